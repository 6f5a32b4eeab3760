//! Gzip on every core, with bytes that do not depend on how many cores there are
//! (format-spec.md, "Classic archives").
//!
//! The input is cut into blocks of [`BLOCK`] bytes. Each block is deflated on its own (at
//! [`LEVEL`]), primed with the last 32 KiB of the block before it as a preset dictionary,
//! and ends with a sync flush (an empty stored block, so the next one starts on a byte);
//! the last ends the stream instead. Concatenated, they are one deflate stream in one gzip
//! member, which every gzip reader takes, and each block's bytes are a function of its own
//! input and the 32 KiB before it only: the number of threads, and which thread did which
//! block, cannot change a byte. The header is fixed but for a comment naming the snapshot
//! (mtime 0, no file name, OS 3).
//!
//! Three kinds of thread: the caller's (it produces the input), `threads` workers (deflate
//! and CRC-32 of a block each), and one writer (puts the blocks out in order and combines
//! the CRCs). Queues between them are bounded, so memory stays a few blocks per worker.

use crate::error::{Error, Result};
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// Input bytes per block.
pub(crate) const BLOCK: usize = 1 << 20;
/// Deflate's window: how much of the previous block primes the next.
const WINDOW: usize = 32 << 10;
/// The compression level: zlib's default, the level the original system's `tar czf` used.
pub(crate) const LEVEL: u32 = 6;
/// Most worker threads, whatever the machine: every one holds blocks in flight.
const MAX_THREADS: usize = 32;
/// Gzip's OS byte: always Unix, whatever system writes the archive.
const OS_UNIX: u8 = 3;
/// Gzip's FCOMMENT flag.
const FCOMMENT: u8 = 0x10;

/// One block for a worker: its input, the window before it, and where its result goes.
struct Job {
    input: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
    done: SyncSender<Result<Deflated>>,
}

/// A compressed block.
struct Deflated {
    bytes: Vec<u8>,
    crc: Crc,
    len: u64,
    last: bool,
}

/// The gzip header: magic, deflate, FCOMMENT, mtime 0, no extra flags, OS 3, the comment.
pub(crate) fn header(comment: &str) -> Vec<u8> {
    let mut h = vec![0x1f, 0x8b, 8, FCOMMENT, 0, 0, 0, 0, 0, OS_UNIX];
    h.extend_from_slice(comment.as_bytes());
    h.push(0);
    h
}

/// Compress everything `produce` writes to its [`Blocks`] into one gzip member written to
/// `out`, on `threads` workers (at least 1). Returns `produce`'s value and `out`.
///
/// # Errors
/// The writer's error when writing `out` failed (the root cause, also when `produce` then
/// failed writing into the closed pipe), else `produce`'s.
pub(crate) fn compress<W: Write + Send, T>(
    out: W,
    comment: &str,
    threads: usize,
    produce: impl FnOnce(&mut Blocks) -> Result<T>,
) -> Result<(T, W)> {
    assert!(!comment.as_bytes().contains(&0) && comment.is_ascii());
    let threads = threads.clamp(1, MAX_THREADS);
    let (job_tx, job_rx) = sync_channel::<Job>(threads);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (order_tx, order_rx) = sync_channel::<Receiver<Result<Deflated>>>(threads + 1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let jobs = Arc::clone(&job_rx);
            s.spawn(move || work(&jobs));
        }
        let head = header(comment);
        let writer = s.spawn(move || write_out(out, &head, &order_rx));
        let mut blocks = Blocks {
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            jobs: job_tx,
            order: order_tx,
        };
        let produced = produce(&mut blocks).and_then(|v| blocks.finish().map(|()| v));
        // Dropping the senders (on error too) ends the workers and the writer.
        drop(blocks);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::internal("gzip writer thread panicked")));
        match (produced, written) {
            (Ok(v), Ok(Some(out))) => Ok((v, out)),
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
            (Ok(_), Ok(None)) => Err(Error::internal("gzip writer stopped before the end")),
        }
    })
}

/// The producer's end of the pipeline: an [`std::io::Write`] that cuts blocks.
pub(crate) struct Blocks {
    block: Vec<u8>,
    dict: Vec<u8>,
    jobs: SyncSender<Job>,
    order: SyncSender<Receiver<Result<Deflated>>>,
}

impl Blocks {
    /// Hand the current block to a worker, its result's place in line to the writer.
    fn dispatch(&mut self, last: bool) -> std::io::Result<()> {
        let input = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::take(&mut self.dict);
        self.dict = input[input.len().saturating_sub(WINDOW)..].to_vec();
        let (done, result) = sync_channel(1);
        // The place in line goes first: the writer then waits on a job that is queued or
        // running, never on one not sent yet.
        let stopped = || std::io::Error::other("the archive's writer stopped");
        self.order.send(result).map_err(|_| stopped())?;
        self.jobs
            .send(Job {
                input,
                dict,
                last,
                done,
            })
            .map_err(|_| stopped())
    }

    /// The last block (possibly empty), which ends the deflate stream.
    fn finish(&mut self) -> Result<()> {
        self.dispatch(true)
            .map_err(|e| Error::io("compressing the archive", e))
    }
}

impl Write for Blocks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A worker: deflate blocks until the producer hangs up.
fn work(jobs: &Mutex<Receiver<Job>>) {
    let mut z = Compress::new(Compression::new(LEVEL), false);
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let result = deflate(&mut z, &job).map(|bytes| {
            let mut crc = Crc::new();
            crc.update(&job.input);
            Deflated {
                bytes,
                crc,
                len: job.input.len() as u64,
                last: job.last,
            }
        });
        // The writer may have stopped after an error; its own error is reported.
        let _ = job.done.send(result);
    }
}

/// One block as raw deflate: reset, primed with the window, sync-flushed or finished.
fn deflate(z: &mut Compress, job: &Job) -> Result<Vec<u8>> {
    let bad = |e: flate2::CompressError| Error::internal(format!("deflate failed: {e}"));
    z.reset();
    if !job.dict.is_empty() {
        z.set_dictionary(&job.dict).map_err(bad)?;
    }
    let flush = if job.last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(job.input.len() / 2 + 1024);
    let mut consumed = 0usize;
    loop {
        let before = z.total_in();
        let status = z
            .compress_vec(&job.input[consumed..], &mut out, flush)
            .map_err(bad)?;
        consumed += usize::try_from(z.total_in() - before).expect("within the block");
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            // A flush is complete once all input is in and output room was left over.
            _ if !job.last && consumed == job.input.len() && room_left => return Ok(out),
            _ => out.reserve(out.capacity().max(64 << 10)),
        }
    }
}

/// The writer: header, blocks in order, trailer (CRC-32 and length mod 2^32, little
/// endian). `None` when the producer stopped before its last block.
fn write_out<W: Write>(
    mut out: W,
    header: &[u8],
    order: &Receiver<Receiver<Result<Deflated>>>,
) -> Result<Option<W>> {
    let io = |e| Error::io("writing the archive", e);
    out.write_all(header).map_err(io)?;
    let mut crc = Crc::new();
    let mut len = 0u64;
    let mut ended = false;
    for result in order {
        let Ok(block) = result.recv() else {
            return Ok(None);
        };
        let block = block?;
        out.write_all(&block.bytes).map_err(io)?;
        len += block.len;
        crc.combine(&block.crc);
        ended = block.last;
    }
    if !ended {
        return Ok(None);
    }
    out.write_all(&crc.sum().to_le_bytes()).map_err(io)?;
    let isize = u32::try_from(len & u64::from(u32::MAX)).expect("masked");
    out.write_all(&isize.to_le_bytes()).map_err(io)?;
    out.flush().map_err(io)?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests;
