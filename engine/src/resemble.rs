//! Resemblance detection: super-features that let a new chunk find a similar stored one.
//!
//! A nightly dump changes a few rows in many chunks. Such a chunk is new to the repository
//! but differs from one already stored by a row or two, so masclet stores it as a delta:
//! compressed with the similar chunk (its *base*) as a zstd prefix. Finding that base must
//! not need the base's bytes: each chunk gets three super-features, and two chunks sharing
//! one are very likely near-identical (Shilane et al., "WAN optimized replication", 2012;
//! Zhang et al., "Odess", 2021).
//!
//! Features: a gear rolling hash (64-byte window) is sampled where its top bits are zero
//! (about one byte in 32); for each of 12 linear transforms the maximum transformed sample
//! is a feature; features are grouped by four and hashed into three super-features. An
//! edit touches few sampled windows, so most features, and usually at least one
//! super-feature, survive it. Super-features live only in the local index (a cache): they
//! are not part of the repository format and can change with an index rebuild.

/// Super-features per chunk.
pub const SUPER_FEATURES: usize = 3;
const FEATURES: usize = 12;
/// Chunks shorter than this get no features (they would all look alike) and no delta.
pub const MIN_RESEMBLANCE_LEN: usize = 512;
/// Sample where these top bits of the rolling hash are all zero (5 bits: 1 byte in 32).
const SAMPLE_MASK: u64 = 0xF800_0000_0000_0000;

const MULT: [u64; FEATURES] = [
    0x9E37_79B9_7F4A_7C15,
    0xBF58_476D_1CE4_E5B9,
    0x94D0_49BB_1331_11EB,
    0xD6E8_FEB8_6659_FD93,
    0xA076_1D64_78BD_642F,
    0xE703_7ED1_A0B4_28DB,
    0x8EBC_6AF0_9C88_C6E3,
    0x5899_65CC_7537_4CC3,
    0x1D8E_4E27_C47D_124F,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x27D4_EB2F_1656_67C5,
];
const ADD: [u64; FEATURES] = [
    0x0123_4567_89AB_CDEF,
    0xFEDC_BA98_7654_3210,
    0x0F1E_2D3C_4B5A_6978,
    0x8796_A5B4_C3D2_E1F0,
    0x1357_9BDF_0246_8ACE,
    0xECA8_6420_FDB9_7531,
    0x2468_ACE0_1357_9BDF,
    0xB97F_DB51_0E2C_4A68,
    0x3C3C_5A5A_9696_F0F0,
    0xA5A5_C3C3_0F0F_6969,
    0x7777_1111_EEEE_8888,
    0x4242_4242_1717_1717,
];

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

/// The super-features of `data`, or `None` for chunks too short to compare.
pub fn super_features(data: &[u8]) -> Option<[i64; SUPER_FEATURES]> {
    if data.len() < MIN_RESEMBLANCE_LEN {
        return None;
    }
    let (gear, _) = fastcdc::v2020::get_gear_with_seed(0);
    let gear: &[u64] = &gear;
    let mut features = [0u64; FEATURES];
    let mut h = 0u64;
    let mut sampled = false;
    for &b in data {
        h = (h << 1).wrapping_add(gear[usize::from(b)]);
        if h & SAMPLE_MASK == 0 {
            sampled = true;
            for (f, (m, a)) in features.iter_mut().zip(MULT.iter().zip(&ADD)) {
                let t = h.wrapping_mul(*m).wrapping_add(*a);
                if t > *f {
                    *f = t;
                }
            }
        }
    }
    if !sampled {
        return None;
    }
    let mut out = [0i64; SUPER_FEATURES];
    for (k, sf) in out.iter_mut().enumerate() {
        let group = &features[k * 4..k * 4 + 4];
        let v = group.iter().fold(k as u64 + 1, |acc, f| mix(acc ^ f));
        // SQLite integers are signed; the bits are what matter.
        *sf = v.cast_signed();
    }
    Some(out)
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
    fn a_changed_row_keeps_a_super_feature() {
        let a = rows(200, 0);
        let mut b = a.clone();
        let pos = b.len() / 2;
        b[pos..pos + 10].copy_from_slice(b"XXXXXXXXXX");
        let (fa, fb) = (super_features(&a).unwrap(), super_features(&b).unwrap());
        assert!(fa.iter().zip(&fb).any(|(x, y)| x == y), "{fa:?} {fb:?}");
        let other = rows(200, 99);
        let fo = super_features(&other).unwrap();
        assert!(
            fa.iter().zip(&fo).all(|(x, y)| x != y),
            "unrelated chunks must not match"
        );
        assert!(super_features(&a[..100]).is_none());
    }
}
