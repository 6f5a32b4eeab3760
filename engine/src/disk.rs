//! Bytes on disk: every structure masclet writes, how it is encoded, sealed and named
//! (format-spec.md describes each byte; these modules mirror it).
//!
//! Nothing here touches storage or the index: the functions turn values into bytes and
//! bytes back into values, refusing anything the format does not allow.

pub(crate) mod compress;
pub(crate) mod config;
pub mod crypto;
pub mod format;
pub mod id;
pub mod keys;
pub mod limits;
pub mod pack;
pub(crate) mod random;
pub(crate) mod snapshot;
pub mod tree;
