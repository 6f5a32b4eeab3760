//! The repository: storage backends behind one small trait, the SQLite index that says
//! where each chunk lives, the lock, an open repository with its keys, the reading of
//! chunks (with their delta chains) back out of packs, and the one walk over a snapshot's
//! entries that restore, check, repair and gc share.

pub(crate) mod fetch;
pub(crate) mod index;
pub(crate) mod live_set;
pub mod lock;
pub(crate) mod repo;
pub(crate) mod storage;
pub mod walk;
