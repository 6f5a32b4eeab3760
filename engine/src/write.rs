//! The writer's parts: what turns chunks and tree records into durable, indexed packs.
//!
//! Each part has one job, and they depend on each other one way only (a backup, gc or an
//! import uses them; none of them knows its caller):
//!
//! - [`queue`]: read batches waiting for their sealing jobs, and the tree records behind
//!   them, kept in stream order;
//! - [`tree_sink`]: the tree stream, stored as it grows, finished into the chunk list a
//!   snapshot names;
//! - [`store`]: plans, seals and packs chunks, and indexes their packs once durable;
//! - [`planner`]: chunk ids, deduplication, the walk beside the parent snapshot, delta
//!   base candidates;
//! - [`seal`]: one chunk compressed or delta-encoded, encrypted and verified;
//! - [`pack_sink`]: sealed chunks gathered into packs, written durably on a thread of
//!   their own and handed back only once durable (gc's repack uses it alone).
//!
//! `queue -> tree_sink -> store -> {planner, seal, pack_sink}`.

pub(crate) mod pack_sink;
pub(crate) mod planner;
pub(crate) mod queue;
pub(crate) mod seal;
pub(crate) mod store;
pub(crate) mod tree_sink;

/// Bytes of input per parallel batch.
pub const BATCH_BYTES: usize = 1 << 20;
