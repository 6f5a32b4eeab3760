//! The sealing queue: read batches whose chunks are being sealed on the thread pool, and
//! the tree records that must follow them, in stream order.
//!
//! A batch is planned on the writer's thread as soon as it is read (planner.rs), its new
//! chunks go to the pool as independent jobs, and the writer moves on to the next batch or
//! the next file. Tree records written meanwhile wait in the queue behind the batch, so the
//! tree lists everything in walk order. The queue is drained (batches packed, records
//! written) oldest first, whenever it holds more than two read batches' worth of bytes,
//! and completely before the tree is closed. With one batch sealed at a time, the cores
//! idled at the end of every batch, and a tree of small files (one batch each) was sealed
//! file by file on one core.

use super::BATCH_BYTES;
use super::planner::Plan;
use super::seal::SealOut;
use super::store::ChunkStore;
use super::tree_sink::TreeSink;
use crate::disk::chunker::Batch;
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::disk::tree::Record;
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

/// Bytes of queued batches beyond which the writer finishes the oldest: one batch being
/// sealed while the next is planned and queued.
const QUEUED_BYTES: usize = 2 * BATCH_BYTES;
/// Queued batches beyond which the writer finishes the oldest (a small file is a batch):
/// bounds the records waiting behind them.
const QUEUED_BATCHES: usize = 256;

/// Work queued in stream order.
enum Deferred {
    /// A tree record written while batches before it were still being sealed.
    Record(Record),
    /// A planned batch whose sealing jobs answer on `done`, each with its index.
    Batch {
        plan: Plan,
        done: Receiver<(usize, SealOut)>,
        jobs: usize,
        bytes: usize,
    },
}

/// The queue and what it holds.
#[derive(Default)]
pub(crate) struct Queue {
    items: VecDeque<Deferred>,
    batches: usize,
    bytes: usize,
}

impl Queue {
    /// Plan `batch` (file content), whose chunk ids are `ids`, and queue its new chunks for
    /// sealing; its chunk records reach the tree once it is packed, in order.
    pub(crate) fn enqueue(
        &mut self,
        batch: Batch,
        ids: &[ChunkId],
        store: &mut ChunkStore<'_>,
        tree: &mut TreeSink,
    ) -> Result<()> {
        let batch = Arc::new(batch);
        let mut plan = store.plan(ObjectType::Data, &batch, ids)?;
        let jobs = plan.jobs();
        let (tx, done) = channel();
        let count = jobs.len();
        let level = store.level();
        let repo = store.repo();
        for (i, job) in jobs.into_iter().enumerate() {
            let (tx, batch) = (tx.clone(), Arc::clone(&batch));
            let keys = Arc::clone(&repo.keys);
            let storage = Arc::clone(&repo.storage);
            rayon::spawn(move || {
                // A panic becomes this chunk's error: rayon would abort the process.
                let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    job.run(&keys, storage.as_ref(), level, &batch.data)
                }))
                .unwrap_or_else(|_| (Err(Error::internal("a sealing job panicked")), None));
                // The receiver is gone only when the backup failed.
                let _ = tx.send((i, out));
            });
        }
        let bytes = batch.data.len();
        self.items.push_back(Deferred::Batch {
            plan,
            done,
            jobs: count,
            bytes,
        });
        self.batches += 1;
        self.bytes += bytes;
        self.drain(QUEUED_BATCHES, QUEUED_BYTES, store, tree)
    }

    /// Add a record to the tree: at once when nothing is queued, else behind the queue.
    pub(crate) fn record(
        &mut self,
        r: &Record,
        store: &mut ChunkStore<'_>,
        tree: &mut TreeSink,
    ) -> Result<()> {
        if self.items.is_empty() {
            tree.push(r, store)
        } else {
            self.items.push_back(Deferred::Record(r.clone()));
            Ok(())
        }
    }

    /// Pack every queued batch and write every queued record.
    pub(crate) fn finish(&mut self, store: &mut ChunkStore<'_>, tree: &mut TreeSink) -> Result<()> {
        self.drain(0, 0, store, tree)
    }

    /// Pack queued batches and write queued records, oldest first, until at most
    /// `batches` batches of at most `bytes` bytes are queued and the queue starts with a
    /// batch.
    fn drain(
        &mut self,
        batches: usize,
        bytes: usize,
        store: &mut ChunkStore<'_>,
        tree: &mut TreeSink,
    ) -> Result<()> {
        while let Some(front) = self.items.front() {
            let over = self.batches > batches || self.bytes > bytes;
            if matches!(front, Deferred::Batch { .. }) && !over {
                break;
            }
            match self.items.pop_front().expect("the front exists") {
                Deferred::Record(r) => tree.push(&r, store)?,
                Deferred::Batch {
                    plan,
                    done,
                    jobs,
                    bytes: size,
                } => {
                    self.batches -= 1;
                    self.bytes -= size;
                    let sealed = collect(&done, jobs)?;
                    for (id, len, sk) in store.pack(plan, sealed)? {
                        if let Some(sk) = sk {
                            tree.push(&Record::Sketch(sk), store)?;
                        }
                        tree.push(&Record::FileChunk(id, len), store)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The answers of a batch's `jobs` sealing jobs, in job order.
fn collect(done: &Receiver<(usize, SealOut)>, jobs: usize) -> Result<Vec<SealOut>> {
    let mut sealed: Vec<Option<SealOut>> = (0..jobs).map(|_| None).collect();
    for _ in 0..jobs {
        let (i, out) = done
            .recv()
            .map_err(|_| Error::internal("a sealing job stopped without a result"))?;
        sealed[i] = Some(out);
    }
    Ok(sealed
        .into_iter()
        .map(|o| o.expect("every job answered once"))
        .collect())
}
