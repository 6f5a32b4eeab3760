//! The pack sink: sealed chunks in, durable packs out.
//!
//! Chunks are gathered into an open pack; a full pack is closed (shuffled, its trailer
//! sealed) and written by a thread of its own. Putting a pack is a 4 MiB write and an
//! fsync: 5 to 30 ms in which the caller's other work (hashing, sealing the next batch on
//! every core, reading the next pack to copy) would otherwise wait.
//!
//! The sink never touches the index. It hands back each pack once storage reported it
//! durable ([`PackSink::durable`], [`PackSink::finish`]), and the caller indexes it then
//! and only then (format-spec.md, "Write ordering and the commit point": the index never
//! points at a pack that was not durable). What indexing means is the caller's: a backup
//! adds new rows ([`index_new_packs`]), gc points existing rows at the copies.
//!
//! At most one pack is being written while the next one fills (the hand-over blocks until
//! the thread is free), so memory stays at two packs.

use crate::disk::crypto::Keys;
use crate::disk::format::ObjectType;
use crate::disk::id::{ChunkId, PackId};
use crate::disk::pack::{PackBuilder, PackEntry};
use crate::error::{Error, Result};
use crate::repository::repo::Repo;
use crate::repository::storage::{Kind, Storage};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// A pack now durable: id, size, trailer entries (for the index).
pub(crate) type Durable = (PackId, u64, Vec<PackEntry>);

/// Gathers sealed chunks into packs and writes them durably on a thread of its own.
pub(crate) struct PackSink {
    target: usize,
    open: PackBuilder,
    to_thread: Option<SyncSender<PackBuilder>>,
    from_thread: Receiver<Result<Durable>>,
    thread: Option<JoinHandle<()>>,
    /// Packs handed over whose outcome has not been collected yet.
    pending: usize,
}

impl PackSink {
    /// A sink writing packs of about `target` bytes, sealed with `keys`, to `storage`.
    pub(crate) fn new(storage: Arc<dyn Storage>, keys: Arc<Keys>, target: usize) -> Self {
        // Capacity 0: a hand-over waits until the thread has finished the previous pack.
        let (to_thread, inbox) = sync_channel::<PackBuilder>(0);
        let (outbox, from_thread) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("masclet-packs".into())
            .spawn(move || {
                for full in inbox {
                    // Closing (shuffle, layout, sealing the trailer) is done here too: it is
                    // work the caller's thread need not wait for.
                    let pack = full.finish(&keys);
                    let size = pack.len();
                    let done = storage
                        .put_parts(Kind::Pack, &pack.id.to_hex(), &pack.slices())
                        .map(|()| (pack.id, size, pack.entries));
                    let failed = done.is_err();
                    if outbox.send(done).is_err() || failed {
                        // The caller stopped listening, or storage failed: nothing after
                        // this pack may be written (the caller is failing anyway).
                        break;
                    }
                }
            })
            .expect("spawning the pack writer thread");
        Self {
            target,
            open: PackBuilder::new(target),
            to_thread: Some(to_thread),
            from_thread,
            thread: Some(thread),
            pending: 0,
        }
    }

    /// A sink for `repo`'s storage, keys and pack size.
    pub(crate) fn for_repo(repo: &Repo) -> Self {
        Self::new(
            Arc::clone(&repo.storage),
            Arc::clone(&repo.keys),
            repo.config.pack_target as usize,
        )
    }

    /// Add one sealed chunk to the open pack; a pack it fills is handed to the writer
    /// thread (waiting while that thread still writes the previous one).
    ///
    /// # Errors
    /// The storage error of an earlier pack that failed.
    pub(crate) fn add(
        &mut self,
        ty: ObjectType,
        id: ChunkId,
        sealed: Vec<u8>,
        raw_len: u32,
        base: Option<ChunkId>,
    ) -> Result<()> {
        self.open.add(ty, id, sealed, raw_len, base);
        if self.open.is_full() {
            self.close_pack()?;
        }
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

    /// Close the open pack and wait until every pack is durable; return those not
    /// collected yet. The sink can go on taking chunks afterwards.
    ///
    /// # Errors
    /// The storage error of a pack that failed.
    pub(crate) fn finish(&mut self) -> Result<Vec<Durable>> {
        self.close_pack()?;
        let mut out = Vec::new();
        while self.pending > 0 {
            let done = self.from_thread.recv().map_err(|_| gone())?;
            self.pending -= 1;
            out.push(done?);
        }
        Ok(out)
    }

    /// Hand the open pack, if it holds anything, to the writer thread.
    fn close_pack(&mut self) -> Result<()> {
        if self.open.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.open, PackBuilder::new(self.target));
        let tx = self.to_thread.as_ref().ok_or_else(gone)?;
        if tx.send(full).is_err() {
            // The thread ended after a failed write: report that failure, not this symptom.
            self.to_thread = None;
            return match self.wait_failure() {
                Some(e) => Err(e),
                None => Err(gone()),
            };
        }
        self.pending += 1;
        Ok(())
    }

    /// The failure that stopped the writer thread, if it reported one.
    fn wait_failure(&mut self) -> Option<Error> {
        while self.pending > 0 {
            self.pending -= 1;
            match self.from_thread.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Some(e),
                Err(_) => return None,
            }
        }
        None
    }
}

impl Drop for PackSink {
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

/// Index durable packs as new: each in its own transaction, under a lock re-confirmed
/// inside it (a writer suspended past the stale limit must not index a pack gc may have
/// deleted as an orphan meanwhile).
///
/// # Errors
/// A lost lock; `IndexUnavailable` on SQLite errors.
pub(crate) fn index_new_packs(repo: &Repo, durable: &[Durable]) -> Result<()> {
    for (id, size, entries) in durable {
        repo.ensure_lock()?;
        repo.index
            .add_pack_if(*id, *size, entries, || repo.ensure_lock_fresh())?;
    }
    Ok(())
}
