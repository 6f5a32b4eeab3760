//! Sealing one new chunk: compress it or make it a delta against a base, encrypt it, and
//! open it again to verify (delta.rs `seal_chunk`). A job needs nothing of the writer, so
//! it runs on the thread pool while the writer plans the next batch.

use crate::chunking::delta::{BaseChain, seal_chunk};
use crate::chunking::resemble::sketch;
use crate::disk::crypto::Keys;
use crate::disk::format::ObjectType;
use crate::disk::id::ChunkId;
use crate::error::Result;
use crate::repository::storage::Storage;
use rayon::prelude::*;
use std::ops::Range;

/// A sealed chunk and the base it is a delta of, if any.
pub(crate) type Sealed = (Vec<u8>, Option<ChunkId>);

/// A new piece sealed (or the reason it could not be), with its sketch when computed late.
pub(crate) type SealOut = (Result<Sealed>, Option<i64>);

/// One new piece of a read batch to seal.
pub(crate) struct SealJob {
    pub(super) ty: ObjectType,
    pub(super) range: Range<usize>,
    pub(super) id: ChunkId,
    pub(super) bases: Vec<BaseChain>,
    /// Compute the piece's resemblance sketch too (no parent asked for it at planning).
    pub(super) late_sketch: bool,
}

impl SealJob {
    /// Seal the piece of `data` (its batch's bytes).
    pub(crate) fn run(
        self,
        keys: &Keys,
        storage: &dyn Storage,
        level: i32,
        data: &[u8],
    ) -> SealOut {
        let plain = &data[self.range];
        let sealed = seal_chunk(keys, storage, self.ty, &self.id, plain, self.bases, level);
        (sealed, self.late_sketch.then(|| sketch(plain)).flatten())
    }
}

/// Run `jobs` on all cores and wait for them; results in job order.
pub(crate) fn seal_now(
    keys: &Keys,
    storage: &dyn Storage,
    level: i32,
    data: &[u8],
    jobs: Vec<SealJob>,
) -> Vec<SealOut> {
    jobs.into_par_iter()
        .map(|job| job.run(keys, storage, level, data))
        .collect()
}
