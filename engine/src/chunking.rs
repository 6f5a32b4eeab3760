//! Choosing how a new chunk is stored: which stored chunk it resembles, how it is stored
//! as a delta against it, and the walk beside the parent snapshot that finds those bases
//! for a nightly dump. (Where a stream is cut is part of the format: `disk::chunker`.)

pub(crate) mod delta;
pub(crate) mod parent;
pub(crate) mod resemble;
