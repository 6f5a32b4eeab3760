//! Content-defined chunking of a byte stream (FastCDC 2020, format-spec.md "Chunking").
//!
//! The chunker reads a stream in large blocks and hands out *batches*: one contiguous buffer
//! holding whole chunks plus their ranges. Batches keep the pipeline allocation-light (one
//! buffer per batch, not one per chunk) and give the parallel stage enough work per call.
//! Memory is bounded by `batch_target + max_size` however long the stream is.

use crate::error::{Error, Result};
use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

/// Chunker parameters; part of the repository config, so changing them is a format matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChunkerParams {
    /// No chunk is shorter, except the last of a stream.
    pub min_size: u32,
    /// The expected chunk length.
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
    /// FastCDC normalization level (0..=3).
    pub normalization: u8,
}

impl ChunkerParams {
    /// The default for new repositories, chosen by measurement on nightly dumps
    /// (format-spec.md, "Choice of chunk sizes").
    pub const DEFAULT: Self = Self {
        min_size: 512,
        avg_size: 128 * 1024,
        max_size: 512 * 1024,
        // Normalization 1 stores as much a night as 0 on average over chunker seeds, and
        // keeps an unlucky seed (one that makes a window repeated in many rows a cut point)
        // from cutting a dump into 2.5 times as many chunks.
        normalization: 1,
    };

    /// Check the bounds format-spec.md allows.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Corrupt`] when a size is out of range, odd or out of order.
    pub fn check(&self) -> Result<()> {
        let (min, avg, max) = (self.min_size, self.avg_size, self.max_size);
        let ok = (256..=1 << 20).contains(&min)
            && (1024..=4 << 20).contains(&avg)
            && (4096..=16 << 20).contains(&max)
            && min < avg
            && avg < max
            && avg.is_power_of_two()
            && min % 2 == 0
            && max % 2 == 0
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::corrupt(format!(
                "chunker parameters out of bounds: {self:?}"
            )))
        }
    }

    fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

/// A buffer of whole chunks and their ranges in it.
#[derive(Debug, Default)]
pub struct Batch {
    /// The bytes of every chunk, back to back.
    pub data: Vec<u8>,
    /// One range per chunk, in stream order, covering `data` exactly.
    pub chunks: Vec<Range<usize>>,
}

/// The cut-point finder: FastCDC 2020 with keyed gear tables.
pub struct Cutter {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Cutter {
    /// A cutter for `params` with gear tables XORed with `seed`.
    pub fn new(params: ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg_size as usize, params.level());
        let (gear, gear_ls) = get_gear_with_seed(seed);
        Self {
            params,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        }
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Cut `data` from its start into chunks, stopping once `limit` bytes are covered.
    /// Unless `eof`, only chunks whose cut point is decided by bytes already present are
    /// returned (a chunk is decided by at most `max_size` bytes from its start), so the
    /// caller can append more data and continue from the end of the last range.
    pub fn cut(&self, data: &[u8], eof: bool, limit: usize) -> Vec<Range<usize>> {
        let max = self.params.max_size as usize;
        let mut chunks =
            Vec::with_capacity(limit.min(data.len()) / self.params.avg_size as usize + 2);
        let mut pos = 0;
        while pos < data.len() && pos < limit && (eof || data.len() - pos >= max) {
            let (_, n) = cut_gear(
                &data[pos..],
                self.params.min_size as usize,
                self.params.avg_size as usize,
                max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
                &self.gear,
                &self.gear_ls,
            );
            debug_assert!(n > 0);
            chunks.push(pos..pos + n);
            pos += n;
        }
        chunks
    }
}

/// Splits a reader into content-defined chunks, batch by batch, and hashes the whole stream.
pub struct Chunker<R> {
    reader: R,
    cutter: Cutter,
    batch_target: usize,
    buf: Vec<u8>,
    eof: bool,
    content: blake3::Hasher,
    total: u64,
}

impl<R: Read> Chunker<R> {
    /// A chunker over `reader` whose batches hold about `batch_target` bytes.
    pub fn new(reader: R, params: ChunkerParams, seed: u64, batch_target: usize) -> Self {
        Self {
            reader,
            cutter: Cutter::new(params, seed),
            batch_target: batch_target.max(params.max_size as usize),
            buf: Vec::new(),
            eof: false,
            content: blake3::Hasher::new(),
            total: 0,
        }
    }

    /// Read until the buffer holds `want` bytes or the reader is exhausted.
    ///
    /// `read_to_end` reads into the buffer's spare capacity without zero-filling it first;
    /// resizing the buffer to `want` before reading wrote 1.5 MiB of zeros for every file,
    /// however small (a sixth of the CPU of backing up a source tree).
    fn fill(&mut self, want: usize) -> std::io::Result<()> {
        if self.eof || self.buf.len() >= want {
            return Ok(());
        }
        let need = want - self.buf.len();
        // Grown as the reader delivers: a small file gets a small buffer.
        self.buf.reserve(need.min(64 << 10));
        // On an error the bytes read before it stay in the buffer, as after a short read.
        let got = (&mut self.reader)
            .take(need as u64)
            .read_to_end(&mut self.buf)?;
        // `take` stops at `need`; fewer means the reader itself ended.
        if got < need {
            self.eof = true;
        }
        Ok(())
    }

    /// The next batch, or `None` at the end of the stream.
    ///
    /// # Errors
    /// The reader's error, as an I/O error on the source.
    pub fn next_batch(&mut self) -> std::io::Result<Option<Batch>> {
        let max = self.cutter.params.max_size as usize;
        self.fill(self.batch_target + max)?;
        if self.buf.is_empty() {
            return Ok(None);
        }
        let chunks = self.cutter.cut(&self.buf, self.eof, self.batch_target);
        let pos = chunks.last().map_or(0, |r| r.end);
        let mut rest = Vec::with_capacity(self.batch_target + 2 * max);
        rest.extend_from_slice(&self.buf[pos..]);
        let mut data = std::mem::replace(&mut self.buf, rest);
        data.truncate(pos);
        self.content.update(&data);
        self.total += pos as u64;
        Ok(Some(Batch { data, chunks }))
    }

    /// Bytes handed out so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// BLAKE3 (unkeyed) of every byte handed out so far.
    pub fn content_hash(&self) -> [u8; 32] {
        *self.content.finalize().as_bytes()
    }
}

/// Chunk lengths of a whole in-memory buffer (golden vectors, measurements).
pub fn chunk_lengths(data: &[u8], params: ChunkerParams, seed: u64) -> Vec<usize> {
    let mut c = Chunker::new(data, params, seed, 1 << 20);
    let mut out = Vec::new();
    while let Some(b) = c.next_batch().expect("reading a slice cannot fail") {
        out.extend(b.chunks.iter().map(ExactSizeIterator::len));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn default_params_are_valid() {
        ChunkerParams::DEFAULT.check().unwrap();
        let bad = ChunkerParams {
            avg_size: 3000,
            ..ChunkerParams::DEFAULT
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn batching_does_not_move_cut_points() {
        let data = noise(3 << 20, 42);
        let p = ChunkerParams::DEFAULT;
        let whole: Vec<usize> = fastcdc::v2020::FastCDC::with_level_and_seed(
            &data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
            p.level(),
            99,
        )
        .map(|c| c.length)
        .collect();
        for target in [64 << 10, 100_000, 1 << 20, 8 << 20] {
            let mut c = Chunker::new(data.as_slice(), p, 99, target);
            let mut lens = vec![];
            while let Some(b) = c.next_batch().unwrap() {
                lens.extend(b.chunks.iter().map(ExactSizeIterator::len));
            }
            assert_eq!(lens, whole, "batch target {target}");
            assert_eq!(c.content_hash(), *blake3::hash(&data).as_bytes());
        }
    }

    /// A reader that hands out a few bytes at a time (a pipe), is sometimes interrupted,
    /// and can fail at a given offset.
    struct Trickle<'a> {
        data: &'a [u8],
        pos: usize,
        calls: usize,
        fail_at: Option<usize>,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(7) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            if self.fail_at.is_some_and(|f| self.pos >= f) {
                return Err(std::io::Error::other("disk went away"));
            }
            let n = buf.len().min(4093).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn short_and_interrupted_reads_cut_the_same_and_errors_surface() {
        let data = noise(2 << 20, 7);
        let p = ChunkerParams::DEFAULT;
        let cut = |r: Trickle| {
            let mut c = Chunker::new(r, p, 5, 1 << 20);
            let mut lens = vec![];
            loop {
                match c.next_batch() {
                    Ok(Some(b)) => lens.extend(b.chunks.iter().map(ExactSizeIterator::len)),
                    Ok(None) => return Ok((lens, c.content_hash())),
                    Err(e) => return Err(e),
                }
            }
        };
        let trickle = |fail_at| Trickle {
            data: &data,
            pos: 0,
            calls: 0,
            fail_at,
        };
        let (lens, hash) = cut(trickle(None)).unwrap();
        assert_eq!(lens, chunk_lengths(&data, p, 5));
        assert_eq!(hash, *blake3::hash(&data).as_bytes());
        let err = cut(trickle(Some(1_500_000))).unwrap_err();
        assert_eq!(err.to_string(), "disk went away");
    }

    proptest! {
        #[test]
        fn covers_every_byte(len in 0usize..300_000, seed in any::<u64>(), target in 1usize..200_000) {
            let data = noise(len, seed);
            let p = ChunkerParams { min_size: 512, avg_size: 2048, max_size: 8192, normalization: 1 };
            let mut c = Chunker::new(data.as_slice(), p, seed, target);
            let mut out = Vec::new();
            while let Some(b) = c.next_batch().unwrap() {
                let mut expect = 0;
                for r in &b.chunks {
                    prop_assert_eq!(r.start, expect);
                    prop_assert!(!r.is_empty() && r.len() <= 8192);
                    expect = r.end;
                }
                prop_assert_eq!(expect, b.data.len());
                out.extend_from_slice(&b.data);
            }
            prop_assert_eq!(out, data);
        }
    }
}
