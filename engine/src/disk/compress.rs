//! zstd for envelopes: plain frames, and delta frames compressed against a base chunk.
//!
//! A delta frame is an ordinary zstd frame made with the base chunk's plaintext referenced
//! as a *prefix* (zstd's single-use raw-content dictionary): the compressor finds the rows
//! the chunk shares with its base and encodes them as matches, so a chunk that differs from
//! its base by one row costs little more than that row. Decoding needs the same prefix.

use crate::error::{Error, Result};
use std::cell::RefCell;
use zstd::zstd_safe::{self, CParameter};

thread_local! {
    // Reusing contexts matters: creating one per 8 KiB chunk costs more than compressing it.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    // The same for delta frames: a nightly backup opens and seals thousands of small deltas,
    // and a fresh context per call (tables allocated and zeroed) cost more than the work.
    static DELTA_CCTX: RefCell<Option<zstd_safe::CCtx<'static>>> = const { RefCell::new(None) };
    static DELTA_DCTX: RefCell<Option<zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// Whether `base` can go through zstd's one-shot dictionary calls on a reused context with
/// exactly the meaning of a referenced prefix. Those calls take a buffer that starts with
/// the dictionary magic for a structured dictionary, and ignore one shorter than 8 bytes on
/// the compressing side only; such bases (rare: chunk content chosen by the user) take the
/// prefix path on a context of their own.
fn raw_content_safe(base: &[u8]) -> bool {
    base.len() >= 8 && base[..4] != zstd_safe::MAGIC_DICTIONARY.to_le_bytes()
}

/// One zstd frame of `plaintext` at `level`.
pub(crate) fn compress(plaintext: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = Some((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, comp) = c.as_mut()?;
        comp.compress(plaintext).ok()
    })
}

/// One zstd frame of `plaintext` compressed with `base` as prefix.
pub(crate) fn compress_delta(plaintext: &[u8], base: &[u8], level: i32) -> Option<Vec<u8>> {
    if raw_content_safe(base) {
        return DELTA_CCTX.with(|c| {
            let mut c = c.borrow_mut();
            if c.is_none() {
                *c = Some(zstd_safe::CCtx::try_create()?);
            }
            let cctx = c.as_mut()?;
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(plaintext.len()));
            cctx.compress_using_dict(&mut out, plaintext, base, level)
                .ok()?;
            Some(out)
        });
    }
    // A prefix must outlive the context that references it, so the context is per call; it
    // sizes its tables to the small inputs, which keeps creating it cheap.
    let mut cctx = zstd_safe::CCtx::try_create()?;
    cctx.set_parameter(CParameter::CompressionLevel(level))
        .ok()?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
    cctx.ref_prefix(base).ok()?;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(plaintext.len()));
    cctx.compress2(&mut out, plaintext).ok()?;
    Some(out)
}

fn frame_size(data: &[u8], max_len: usize) -> Result<usize> {
    let size = zstd_safe::get_frame_content_size(data)
        .map_err(|_| Error::corrupt("compressed payload has a bad frame header"))?
        .ok_or_else(|| Error::corrupt("compressed payload does not state its size"))?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > max_len {
        return Err(Error::corrupt(format!(
            "payload of {size} bytes exceeds the limit of {max_len}"
        )));
    }
    Ok(size)
}

/// Decode one frame whose stated size is at most `max_len`.
pub(crate) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let size = frame_size(data, max_len)?;
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::new()
                    .map_err(|e| Error::internal(format!("zstd: {e}")))?,
            );
        }
        let dec = d.as_mut().expect("set above");
        let out = dec
            .decompress(data, size)
            .map_err(|e| Error::corrupt(format!("compressed payload does not decode: {e}")))?;
        if out.len() != size {
            return Err(Error::corrupt("compressed payload has the wrong length"));
        }
        Ok(out)
    })
}

/// Decode one delta frame against `base`.
pub(crate) fn decompress_delta(data: &[u8], base: &[u8], max_len: usize) -> Result<Vec<u8>> {
    let size = frame_size(data, max_len)?;
    let check = |out: Vec<u8>| {
        if out.len() == size {
            Ok(out)
        } else {
            Err(Error::corrupt("delta payload has the wrong length"))
        }
    };
    let undecodable = |c: usize| {
        Error::corrupt(format!(
            "delta payload does not decode: {}",
            zstd_safe::get_error_name(c)
        ))
    };
    if raw_content_safe(base) {
        return DELTA_DCTX.with(|d| {
            let mut d = d.borrow_mut();
            if d.is_none() {
                *d = Some(
                    zstd_safe::DCtx::try_create()
                        .ok_or_else(|| Error::internal("zstd: no memory for a context"))?,
                );
            }
            let dctx = d.as_mut().expect("set above");
            let mut out = Vec::with_capacity(size);
            dctx.decompress_using_dict(&mut out, data, base)
                .map_err(undecodable)?;
            check(out)
        });
    }
    let mut dctx = zstd_safe::DCtx::try_create()
        .ok_or_else(|| Error::internal("zstd: no memory for a context"))?;
    dctx.ref_prefix(base)
        .map_err(|_| Error::internal("zstd: cannot reference the base"))?;
    let mut out = Vec::with_capacity(size);
    dctx.decompress(&mut out, data).map_err(undecodable)?;
    check(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_against_a_similar_base_is_small_and_round_trips() {
        let base: Vec<u8> = (0..400)
            .flat_map(|i| format!("{i}\tBlanca\tF\tOK\t{}\n", i * 7 % 400).into_bytes())
            .collect();
        let mut changed = base.clone();
        changed[3000..3010].copy_from_slice(b"0123456789");
        let plain = compress(&changed, 3).unwrap();
        let delta = compress_delta(&changed, &base, 3).unwrap();
        assert!(
            delta.len() * 10 < plain.len(),
            "delta {} plain {}",
            delta.len(),
            plain.len()
        );
        assert_eq!(
            decompress_delta(&delta, &base, changed.len()).unwrap(),
            changed
        );
        // A wrong base gives wrong bytes (which the chunk id check then rejects), never a panic.
        let mut wrong = base.clone();
        wrong[1000..1100].fill(b'#');
        assert!(decompress_delta(&delta, &wrong, changed.len()).map_or(true, |d| d != changed));
        assert!(
            decompress_delta(&delta, &base, changed.len() - 1).is_err(),
            "size cap"
        );
    }

    /// The reused-context path and the referenced-prefix path must make frames the other
    /// decodes: the format defines deltas by the prefix, the fast path is an optimisation.
    #[test]
    fn dictionary_path_and_prefix_path_agree() {
        let base: Vec<u8> = (0..300)
            .flat_map(|i| format!("{i}\tMora\tM\tDEF\t{}\n", i * 13 % 300).into_bytes())
            .collect();
        let mut changed = base.clone();
        changed.drain(2000..2040);
        changed.extend_from_slice(b"301\tNova\tF\tOK\t7\n");
        let prefix_frame = |plain: &[u8], base: &[u8]| {
            let mut cctx = zstd_safe::CCtx::try_create().unwrap();
            cctx.set_parameter(CParameter::CompressionLevel(3)).unwrap();
            cctx.ref_prefix(base).unwrap();
            let mut out = Vec::with_capacity(zstd_safe::compress_bound(plain.len()));
            cctx.compress2(&mut out, plain).unwrap();
            out
        };
        let prefix_decode = |frame: &[u8], base: &[u8]| {
            let mut dctx = zstd_safe::DCtx::try_create().unwrap();
            dctx.ref_prefix(base).unwrap();
            let mut out = Vec::with_capacity(changed.len());
            dctx.decompress(&mut out, frame).unwrap();
            out
        };
        assert!(raw_content_safe(&base));
        let fast = compress_delta(&changed, &base, 3).unwrap();
        assert_eq!(prefix_decode(&fast, &base), changed);
        let slow = prefix_frame(&changed, &base);
        assert_eq!(
            decompress_delta(&slow, &base, changed.len()).unwrap(),
            changed
        );
        assert!(fast.len() * 10 < changed.len(), "the base was used");
        // A base that looks like a structured dictionary takes the prefix path both ways.
        let mut magic = zstd_safe::MAGIC_DICTIONARY.to_le_bytes().to_vec();
        magic.extend_from_slice(&base);
        assert!(!raw_content_safe(&magic));
        let frame = compress_delta(&changed, &magic, 3).unwrap();
        assert_eq!(prefix_decode(&frame, &magic), changed);
        assert_eq!(
            decompress_delta(&frame, &magic, changed.len()).unwrap(),
            changed
        );
        let frame = prefix_frame(&changed, &magic);
        assert_eq!(
            decompress_delta(&frame, &magic, changed.len()).unwrap(),
            changed
        );
    }
}
