//! Bytes on disk: every structure masclet writes, how it is encoded, sealed and named
//! (format-spec.md describes each byte; these modules mirror it).
//!
//! The functions turn values into bytes and bytes back into values, refusing anything the
//! format does not allow. Where a stream is cut into chunks ([`chunker`]) is part of the
//! format too: the cut points decide what deduplicates, and golden vectors lock them. Packs
//! and snapshots are read and written through the storage trait, the one thing this layer
//! takes from the repository layer; nothing here touches the index.

pub mod chunker;
pub(crate) mod compress;
pub(crate) mod config;
pub mod crypto;
pub mod format;
pub mod id;
pub mod keys;
pub(crate) mod limits;
pub mod pack;
pub(crate) mod random;
pub(crate) mod snapshot;
pub mod tree;
