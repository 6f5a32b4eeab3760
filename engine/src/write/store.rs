//! The chunk store: a read batch in, its chunks planned, sealed and packed, their pack
//! indexed once durable. It joins the planner, the sealing jobs and the pack sink, and
//! keeps the counters a snapshot records.

use super::pack_sink::{Durable, PackSink, index_new_packs};
use super::planner::{Plan, Planner, chunk_ids};
use super::seal::{SealOut, seal_now};
use crate::disk::chunker::Batch;
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::disk::snapshot::BackupStats;
use crate::error::Result;
use crate::repository::repo::Repo;
use std::collections::HashSet;

/// A chunk as the tree lists it: id, plaintext length, resemblance sketch (file content).
pub(crate) type Stored = (ChunkId, u32, Option<i64>);

/// What storing chunks did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    /// Chunks listed (new or not).
    pub(crate) chunks: u64,
    /// Chunks sealed and packed.
    pub(crate) new_chunks: u64,
    /// Plaintext bytes of the new file-content chunks.
    pub(crate) new_raw_bytes: u64,
    /// Sealed bytes of the new chunks.
    pub(crate) bytes_added: u64,
    /// New chunks stored as deltas.
    pub(crate) deltas: u64,
    /// Packs made durable and indexed.
    pub(crate) packs_written: u64,
    /// New chunks that had been dropped from the index as lost (see [`ChunkStore::untrust`]).
    pub(crate) stored_again: u64,
}

impl Counters {
    /// Add the chunk counters to a snapshot's statistics.
    pub(crate) fn add_to(&self, stats: &mut BackupStats) {
        stats.chunks += self.chunks;
        stats.new_chunks += self.new_chunks;
        stats.new_raw_bytes += self.new_raw_bytes;
        stats.bytes_added += self.bytes_added;
    }
}

/// Plans, seals and packs chunks for one writer.
pub(crate) struct ChunkStore<'r> {
    repo: &'r Repo,
    planner: Planner<'r>,
    sink: PackSink,
    /// Chunks whose index rows were dropped because their pack is gone.
    untrusted: HashSet<ChunkId>,
    counters: Counters,
}

impl<'r> ChunkStore<'r> {
    pub(crate) fn new(repo: &'r Repo) -> Self {
        Self {
            repo,
            planner: Planner::new(repo),
            sink: PackSink::for_repo(repo),
            untrusted: HashSet::new(),
            counters: Counters::default(),
        }
    }

    /// The repository written to.
    pub(crate) fn repo(&self) -> &'r Repo {
        self.repo
    }

    /// The planner (to walk beside a parent snapshot).
    pub(crate) fn planner(&mut self) -> &mut Planner<'r> {
        &mut self.planner
    }

    /// Chunks the index dropped as lost: storing one again is counted.
    pub(crate) fn untrust(&mut self, ids: HashSet<ChunkId>) {
        self.untrusted = ids;
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    /// The zstd level chunks are sealed at.
    pub(crate) fn level(&self) -> i32 {
        i32::from(self.repo.config.zstd_level)
    }

    /// Decide what of `batch`, whose chunk ids are `ids`, to store (its sealing jobs come
    /// from the plan).
    pub(crate) fn plan(&mut self, ty: ObjectType, batch: &Batch, ids: &[ChunkId]) -> Result<Plan> {
        self.planner.plan(ty, batch, ids)
    }

    /// Store the chunks of `batch` the repository lacks, sealing them now on all cores;
    /// return every chunk as the tree lists it.
    pub(crate) fn store(&mut self, ty: ObjectType, batch: &Batch) -> Result<Vec<Stored>> {
        let repo = self.repo;
        let ids = chunk_ids(&repo.keys, batch, true);
        let mut plan = self.plan(ty, batch, &ids)?;
        let sealed = seal_now(
            &repo.keys,
            repo.storage.as_ref(),
            self.level(),
            &batch.data,
            plan.jobs(),
        );
        self.pack(plan, sealed)
    }

    /// Put a planned batch's sealed chunks into packs, in order, and index the packs that
    /// became durable meanwhile; return every piece as the tree lists it.
    pub(crate) fn pack(&mut self, plan: Plan, sealed: Vec<SealOut>) -> Result<Vec<Stored>> {
        let Plan { ty, mut pieces, .. } = plan;
        for (p, (s, late_sketch)) in pieces.iter_mut().filter(|p| p.new).zip(sealed) {
            // Only sketches computed while sealing come back; planned ones stay.
            if late_sketch.is_some() {
                p.sketch = late_sketch;
            }
            let (s, base) = s?;
            let raw = p.range.len();
            let c = &mut self.counters;
            c.new_chunks += 1;
            if ty == ObjectType::Data {
                c.new_raw_bytes += raw as u64;
            }
            c.bytes_added += s.len() as u64;
            c.deltas += u64::from(base.is_some());
            c.stored_again += u64::from(self.untrusted.remove(&p.id));
            self.sink.add(ty, p.id, s, p.len(), base)?;
        }
        self.counters.chunks += pieces.len() as u64;
        let durable = self.sink.durable()?;
        self.index(&durable)?;
        Ok(pieces
            .into_iter()
            .map(|p| (p.id, p.len(), p.sketch))
            .collect())
    }

    /// Write every pack durably, then index it: never the other way round. After this, all
    /// the chunks stored so far are in the index.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let durable = self.sink.finish()?;
        self.index(&durable)
    }

    fn index(&mut self, durable: &[Durable]) -> Result<()> {
        index_new_packs(self.repo, durable)?;
        for (_, _, entries) in durable {
            self.planner.indexed(entries.iter().map(|e| &e.id));
        }
        self.counters.packs_written += durable.len() as u64;
        Ok(())
    }
}
