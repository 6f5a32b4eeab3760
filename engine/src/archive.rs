//! Classic archives: the original system's `masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz`
//! files in `daily/ weekly/ monthly/ yearly/`, exported from snapshots on demand
//! (reproducibly: the same snapshot always gives the same bytes), verified like the old
//! `test-backup.sh` did, and imported from the old system as snapshots (format-spec.md,
//! "Classic archives").
//!
//! The top layer: it reads snapshots through [`crate::repository::walk`], writes them
//! through [`crate::ops::backup`], and test-restores database dumps through [`crate::pg`].

pub mod export;
mod folder;
mod gzip;
pub mod mirror;
mod tarball;
pub use export::{ExportOptions, Exported, export};
pub use folder::LATEST;
pub use mirror::{
    InFolder, MirrorPlan, MirrorSummary, ToExport, mirror, plan_mirror, read_manifest,
};
pub mod manifest;
pub mod name;

pub use manifest::{ARCHIVE_MANIFEST, ArchiveManifest, Member, MemberKind};
pub use name::{ArchiveName, Tier};
