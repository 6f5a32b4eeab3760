//! Resemblance sketches: a cheap fingerprint that stays the same when a chunk changes a
//! little, so a new chunk can find last night's version of itself to delta against.
//!
//! Over a chunk's last 16 KiB, a gear rolling hash (64-byte window) is sampled where its top
//! bits are zero (about one byte in 32); for each of three linear transforms the maximum
//! transformed sample is a feature; the three features hashed together are the sketch (a
//! "super-feature": Shilane et al., "WAN optimized replication", 2012). Editing a row touches
//! a handful of sampled windows out of ~500, so the sketch usually survives it, while
//! unrelated chunks almost never share one. The span is the chunk's end because the head
//! (below) already recognises a chunk whose start survived; the feature is for chunks whose
//! start changed. Sampling all of a 128 KiB chunk cost a tenth of a first backup's CPU and
//! found no more bases (docs/benchmarks.md). That super-feature is the low 32 bits of a
//! sketch; the high 32 bits hash the chunk's first 32 bytes (its head). Content-defined cut
//! points come back wherever the bytes around them do, so a changed chunk usually starts
//! exactly where last night's version started, even when rows removed or added before it
//! moved it, or removed rows inside it erased the cut point at its end. Sketches travel in the tree
//! stream next to each chunk reference; a backup compares a new chunk's sketch with those
//! of the parent snapshot's chunks near the same place.

/// Chunks shorter than this get no sketch (they would all look alike).
pub const MIN_SKETCH_LEN: usize = 512;
/// Bytes at a chunk's end the super-feature is sampled from.
const FEATURE_SPAN: usize = 16 * 1024;
/// Bytes of a chunk's start that make the head half of its sketch.
const HEAD_LEN: usize = 32;
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
    let gear: &[u64; 256] = gear
        .as_ref()
        .try_into()
        .expect("a gear table has 256 entries");
    let (features, sampled) = features(&data[data.len().saturating_sub(FEATURE_SPAN)..], gear);
    sampled.then(|| {
        // The low half is never zero, so no sketch is mistaken for an empty one.
        let feature = (features.iter().fold(0x5eed, |acc, f| mix(acc ^ f)) as u32).max(1);
        (u64::from(head_hash(data)) << 32 | u64::from(feature)).cast_signed()
    })
}

/// The hash of the first [`HEAD_LEN`] bytes of `data`, which must have that many.
fn head_hash(data: &[u8]) -> u32 {
    data[..HEAD_LEN].chunks_exact(8).fold(0x4ead, |acc, w| {
        mix(acc ^ u64::from_le_bytes(w.try_into().expect("8 bytes")))
    }) as u32
}

/// The head half of a sketch: a hash of the chunk's first [`HEAD_LEN`] bytes.
pub fn head(sketch: i64) -> u32 {
    (sketch.cast_unsigned() >> 32) as u32
}

/// The resemblance half of a sketch: the super-feature.
pub fn feature(sketch: i64) -> u32 {
    sketch.cast_unsigned() as u32
}

/// Lanes of [`features`]: independent hash chains the CPU can run side by side.
const LANES: usize = 4;

/// The three features (maxima of transformed gear hashes at sampled positions) and whether
/// any position was sampled.
///
/// The gear hash at a position depends only on the 64 bytes ending there (each step shifts
/// older bytes one bit further out), and a maximum does not depend on the order positions
/// are visited in. So the chunk is cut into [`LANES`] stretches, each started 64 bytes early
/// without sampling, and the stretches are walked in step: the same result as one walk
/// from the start (tested), without waiting on one serial chain of shifts and adds.
fn features(data: &[u8], gear: &[u64; 256]) -> ([u64; 3], bool) {
    let step = |h: u64, b: u8| (h << 1).wrapping_add(gear[usize::from(b)]);
    let mut features = [0u64; 3];
    let mut sampled = false;
    let mut sample = |h: u64| {
        if h & SAMPLE_MASK == 0 {
            sampled = true;
            for (f, (m, a)) in features.iter_mut().zip(MULT.iter().zip(&ADD)) {
                *f = (*f).max(h.wrapping_mul(*m).wrapping_add(*a));
            }
        }
    };
    let seg = data.len() / LANES;
    let mut h = [0u64; LANES];
    for (k, hk) in h.iter_mut().enumerate().skip(1) {
        let start = k * seg;
        *hk = data[start.saturating_sub(64)..start]
            .iter()
            .fold(0, |acc, &b| step(acc, b));
    }
    let (s0, rest) = data.split_at(seg);
    let (s1, rest) = rest.split_at(seg);
    let (s2, s3) = rest.split_at(seg);
    for (((&b0, &b1), &b2), &b3) in s0.iter().zip(s1).zip(s2).zip(&s3[..seg]) {
        h = [
            step(h[0], b0),
            step(h[1], b1),
            step(h[2], b2),
            step(h[3], b3),
        ];
        // One rarely taken branch for all four lanes (a position is sampled 1 time in 32).
        let hit = h.iter().fold(false, |acc, x| acc | (x & SAMPLE_MASK == 0));
        if hit {
            h.iter().for_each(|&x| sample(x));
        }
    }
    // The last lane carries on over what the even split left over.
    let mut last = h[LANES - 1];
    for &b in &data[LANES * seg..] {
        last = step(last, b);
        sample(last);
    }
    (features, sampled)
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

    #[test]
    fn the_head_half_names_the_first_bytes_and_the_feature_half_the_rest() {
        let a = rows(200, 0);
        let mut b = a.clone();
        b[5000..5008].copy_from_slice(b"XXXXXXXX");
        let (sa, sb) = (sketch(&a).unwrap(), sketch(&b).unwrap());
        assert_eq!(head(sa), head(sb), "an edit past the head keeps it");
        let mut c = a.clone();
        c[3] ^= 1;
        let sc = sketch(&c).unwrap();
        assert_ne!(head(sa), head(sc), "an edit in the head changes it");
        assert_eq!(
            feature(sa),
            feature(sc),
            "one byte rarely moves the feature"
        );
        assert_ne!(feature(sketch(&rows(200, 99)).unwrap()), feature(sa));
        assert_ne!(feature(sa), 0);
    }

    #[test]
    fn the_feature_reads_only_the_chunks_last_16_kib() {
        let a = rows(2000, 0);
        assert!(a.len() > 3 * FEATURE_SPAN);
        let mut b = a.clone();
        let before_span = a.len() - FEATURE_SPAN - 100;
        b[before_span..before_span + 64].fill(b'X');
        assert_eq!(feature(sketch(&a).unwrap()), feature(sketch(&b).unwrap()));
        // The same edit in the span moves at least one of twenty features.
        let moved = (0..20).any(|k| {
            let mut c = a.clone();
            let at = a.len() - FEATURE_SPAN + 200 + k * 700;
            c[at..at + 64].fill(b'X');
            feature(sketch(&a).unwrap()) != feature(sketch(&c).unwrap())
        });
        assert!(moved, "edits inside the span must reach the feature");
    }

    /// The walk in lanes must give exactly what one walk from the start gives: sketches are
    /// stored in trees, and a different value would cost the next backup its bases.
    #[test]
    fn lanes_give_the_same_features_as_one_walk() {
        let (gear, _) = fastcdc::v2020::get_gear_with_seed(0);
        let serial = |data: &[u8]| {
            let mut features = [0u64; 3];
            let (mut h, mut sampled) = (0u64, false);
            for &b in data {
                h = (h << 1).wrapping_add(gear[usize::from(b)]);
                if h & SAMPLE_MASK == 0 {
                    sampled = true;
                    for (f, (m, a)) in features.iter_mut().zip(MULT.iter().zip(&ADD)) {
                        *f = (*f).max(h.wrapping_mul(*m).wrapping_add(*a));
                    }
                }
            }
            (features, sampled)
        };
        let data = rows(3000, 5);
        for len in [
            0,
            1,
            63,
            64,
            65,
            255,
            256,
            257,
            511,
            512,
            4099,
            8192,
            65_537,
            data.len(),
        ] {
            let d = &data[..len.min(data.len())];
            let table: &[u64; 256] = gear.as_ref().try_into().unwrap();
            assert_eq!(features(d, table), serial(d), "length {len}");
        }
    }
}
