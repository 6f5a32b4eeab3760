//! Resemblance sketches: a cheap fingerprint that stays the same when a chunk changes a
//! little, so a new chunk can find last night's version of itself to delta against.
//!
//! A gear rolling hash (64-byte window) is sampled where its top bits are zero (about one
//! byte in 32); for each of three linear transforms the maximum transformed sample is a
//! feature; the three features hashed together are the sketch (a "super-feature": Shilane
//! et al., "WAN optimized replication", 2012). Editing a row touches a handful of sampled
//! windows out of ~250 in an 8 KiB chunk, so the sketch usually survives it, while unrelated
//! chunks almost never share one. Sketches travel in the tree stream next to each chunk
//! reference; a backup compares a new chunk's sketch with those of the parent snapshot's
//! chunks near the same place.

/// Chunks shorter than this get no sketch (they would all look alike).
pub const MIN_SKETCH_LEN: usize = 512;
/// Sample where these top bits of the rolling hash are all zero (1 byte in 32).
const SAMPLE_MASK: u64 = 0xF800_0000_0000_0000;
const MULT: [u64; 3] = [
    0x9E37_79B9_7F4A_7C15,
    0xBF58_476D_1CE4_E5B9,
    0x94D0_49BB_1331_11EB,
];
const ADD: [u64; 3] = [
    0x0123_4567_89AB_CDEF,
    0xFEDC_BA98_7654_3210,
    0x0F1E_2D3C_4B5A_6978,
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// The sketch of `data`, or `None` for chunks too short (or too uniform) to compare.
pub fn sketch(data: &[u8]) -> Option<i64> {
    if data.len() < MIN_SKETCH_LEN {
        return None;
    }
    let (gear, _) = fastcdc::v2020::get_gear_with_seed(0);
    let gear: &[u64] = &gear;
    let mut features = [0u64; 3];
    let mut h = 0u64;
    let mut sampled = false;
    for &b in data {
        h = (h << 1).wrapping_add(gear[usize::from(b)]);
        if h & SAMPLE_MASK == 0 {
            sampled = true;
            for (f, (m, a)) in features.iter_mut().zip(MULT.iter().zip(&ADD)) {
                *f = (*f).max(h.wrapping_mul(*m).wrapping_add(*a));
            }
        }
    }
    // The stored form is an i64 (the tree stream and SQLite are signed); only bits matter.
    sampled.then(|| {
        features
            .iter()
            .fold(0x5eed, |acc, f| mix(acc ^ f))
            .cast_signed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, salt: u32) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                "{i}\tBlanca {}\tF\tOK\t{}\t2024-03-{:02}\n",
                i % 97,
                (i as u32 * 7 + salt) % 400,
                i % 28 + 1
            ));
        }
        s.into_bytes()
    }

    #[test]
    fn a_changed_row_usually_keeps_the_sketch() {
        let a = rows(200, 0);
        let mut kept = 0;
        for k in 0..20 {
            let mut b = a.clone();
            let pos = 300 + k * 300;
            b[pos..pos + 8].copy_from_slice(b"XXXXXXXX");
            kept += usize::from(sketch(&a) == sketch(&b));
        }
        assert!(kept >= 12, "only {kept} of 20 edits kept the sketch");
        assert_ne!(
            sketch(&a),
            sketch(&rows(200, 99)),
            "unrelated chunks must differ"
        );
        assert!(sketch(&a[..100]).is_none());
    }
}
