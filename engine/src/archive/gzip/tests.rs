use super::*;
use crate::error::ErrorKind;
use std::io::Read;

/// Text-like bytes that compress, with some noise so blocks differ.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{}\tanimal {}\t2025-03-{:02}\n",
            x % 100_000,
            x % 977,
            x % 28 + 1
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
    let (n, out) = compress(Vec::new(), "masclet test", threads, |b| {
        // Odd write sizes, so block cuts fall inside writes.
        for piece in data.chunks(77_777) {
            b.write_all(piece).map_err(|e| Error::io("test", e))?;
        }
        Ok(data.len())
    })
    .unwrap();
    assert_eq!(n, data.len());
    out
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::GzDecoder::new(gz);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    assert_eq!(d.header().unwrap().comment(), Some(&b"masclet test"[..]));
    out
}

#[test]
fn every_length_around_block_edges_round_trips_as_one_gzip_member() {
    for len in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 17] {
        let data = sample(len, len as u64);
        let gz = gzip(&data, 3);
        assert_eq!(gunzip(&gz), data, "length {len}");
        // One member: a single-member decoder consumed every byte.
        let mut single = flate2::bufread::GzDecoder::new(&gz[..]);
        std::io::copy(&mut single, &mut std::io::sink()).unwrap();
        assert!(
            single.into_inner().is_empty(),
            "length {len}: trailing bytes"
        );
    }
}

#[test]
fn the_bytes_do_not_depend_on_the_number_of_threads() {
    let data = sample(5 * BLOCK + 4321, 7);
    let one = gzip(&data, 1);
    for threads in [2, 3, 8, 64] {
        assert!(gzip(&data, threads) == one, "{threads} threads differ");
    }
    assert!(one.len() < data.len() / 2, "it compresses");
}

#[test]
fn the_header_has_no_time_no_name_and_a_fixed_os() {
    let gz = gzip(b"x", 2);
    assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, FCOMMENT, 0, 0, 0, 0, 0, 3]);
    assert_eq!(&gz[10..23], b"masclet test\0");
}

#[test]
fn priming_with_the_previous_window_compresses_repeats_across_blocks() {
    // The second block repeats the end of the first: with the window it costs little.
    let first = sample(BLOCK, 1);
    let mut data = first.clone();
    data.extend_from_slice(&first[BLOCK - 20_000..]);
    let gz = gzip(&data, 2);
    let alone = gzip(&first, 2);
    assert!(
        gz.len() < alone.len() + 1000,
        "{} vs {}",
        gz.len(),
        alone.len()
    );
}

/// A writer that fails after `left` bytes, like a full disk.
struct Full {
    left: usize,
}

impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_output_is_the_error_reported_and_nothing_hangs() {
    let data = sample(8 * BLOCK, 3);
    let r = compress(Full { left: 100_000 }, "c", 2, |b| {
        b.write_all(&data).map_err(|e| Error::io("producing", e))
    });
    let e = r.err().expect("fails");
    assert_eq!(e.kind(), ErrorKind::Io);
    assert_eq!(e.io_kind(), Some(std::io::ErrorKind::StorageFull), "{e}");
}

#[test]
fn a_failing_producer_is_the_error_reported_and_nothing_hangs() {
    let data = sample(3 * BLOCK, 4);
    let r = compress(Vec::new(), "c", 2, |b| -> Result<()> {
        b.write_all(&data).map_err(|e| Error::io("producing", e))?;
        Err(Error::corrupt("damaged chunk"))
    });
    assert_eq!(r.expect_err("fails").kind(), ErrorKind::Corrupt);
}

/// The exact bytes of a known input, pinned: a dependency update that changes what the
/// deflate implementation writes (legal for deflate, but it changes every export's name
/// and checksum) fails here first, where it can be decided on.
#[test]
fn golden_bytes_of_a_known_input_are_pinned() {
    use sha2::Digest;
    let gz = gzip(&sample(3 * BLOCK + 17, 11), 2);
    let sha = crate::disk::id::to_hex(&sha2::Sha256::digest(&gz));
    assert_eq!(
        sha,
        "f28480638bb1807a87506a3511132af4fdff4178b5ab401af75712b73edb7689",
        "{} bytes",
        gz.len()
    );
}
