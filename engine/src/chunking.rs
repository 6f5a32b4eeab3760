//! Choosing chunks: where a stream is cut (FastCDC), which stored chunk a new one
//! resembles, how it is stored as a delta against it, and the walk beside the parent
//! snapshot that finds those bases for a nightly dump.

pub mod chunker;
pub(crate) mod delta;
pub(crate) mod parent;
pub(crate) mod resemble;
