//! Writing a backup's packs on a thread of their own.
//!
//! Putting a pack is a 4 MiB write and an fsync: 5 to 30 ms in which the backup's other
//! work (hashing, sealing the next batch on every core) would otherwise wait. The backup
//! hands each finished pack to this thread and carries on; it indexes a pack only once the
//! thread reports it durable (format-spec.md, "Write ordering and the commit point": the
//! index never points at a pack that was not durable), and it writes its snapshot only
//! after every pack is durable and indexed.
//!
//! At most one pack is being written while the next one fills (the hand-over blocks until
//! the thread is free), so memory stays at two packs.

use crate::error::{Error, Result};
use crate::id::PackId;
use crate::pack::{FinishedPack, PackEntry};
use crate::storage::{Kind, Storage};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// A pack now durable: id, size, trailer entries (for the index).
pub(crate) type Durable = (PackId, u64, Vec<PackEntry>);

/// The pack-writing thread and its two channels.
pub(crate) struct PackWriter {
    to_thread: Option<SyncSender<FinishedPack>>,
    from_thread: Receiver<Result<Durable>>,
    thread: Option<JoinHandle<()>>,
    /// Packs handed over whose outcome has not been collected yet.
    pending: usize,
}

impl PackWriter {
    /// Start the thread, writing to `storage`.
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        // Capacity 0: a hand-over waits until the thread has finished the previous pack.
        let (to_thread, inbox) = sync_channel::<FinishedPack>(0);
        let (outbox, from_thread) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("masclet-packs".into())
            .spawn(move || {
                for pack in inbox {
                    let size = pack.len();
                    let done = storage
                        .put_parts(Kind::Pack, &pack.id.to_hex(), &pack.slices())
                        .map(|()| (pack.id, size, pack.entries));
                    let failed = done.is_err();
                    if outbox.send(done).is_err() || failed {
                        // The backup stopped listening, or storage failed: nothing after
                        // this pack may be written (the backup is failing anyway).
                        break;
                    }
                }
            })
            .expect("spawning the pack writer thread");
        Self {
            to_thread: Some(to_thread),
            from_thread,
            thread: Some(thread),
            pending: 0,
        }
    }

    /// Hand a finished pack to the thread; waits while it is still writing the previous one.
    ///
    /// # Errors
    /// `Internal` if the thread is gone (it stops after a storage error, which the next
    /// [`PackWriter::durable`] or [`PackWriter::finish`] reports).
    pub(crate) fn send(&mut self, pack: FinishedPack) -> Result<()> {
        let tx = self.to_thread.as_ref().ok_or_else(gone)?;
        if tx.send(pack).is_err() {
            // The thread ended after a failed write: report that failure, not this symptom.
            return match self.finish() {
                Err(e) => Err(e),
                Ok(_) => Err(gone()),
            };
        }
        self.pending += 1;
        Ok(())
    }

    /// Packs that became durable since the last call, without waiting.
    ///
    /// # Errors
    /// The storage error of a pack that failed.
    pub(crate) fn durable(&mut self) -> Result<Vec<Durable>> {
        let mut out = Vec::new();
        while let Ok(done) = self.from_thread.try_recv() {
            self.pending -= 1;
            out.push(done?);
        }
        Ok(out)
    }

    /// Wait until every pack handed over is durable; return those not collected yet.
    ///
    /// # Errors
    /// The storage error of a pack that failed.
    pub(crate) fn finish(&mut self) -> Result<Vec<Durable>> {
        let mut out = Vec::new();
        while self.pending > 0 {
            let done = self.from_thread.recv().map_err(|_| gone())?;
            self.pending -= 1;
            out.push(done?);
        }
        Ok(out)
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once its current write is done.
        self.to_thread = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gone() -> Error {
    Error::internal("the pack writer thread stopped")
}
