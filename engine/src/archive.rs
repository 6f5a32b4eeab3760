//! Classic archives: the original system's `masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz`
//! files in `daily/ weekly/ monthly/ yearly/`, exported from snapshots on demand
//! (reproducibly: the same snapshot always gives the same bytes), verified like the old
//! `test-backup.sh` did, and imported from the old system as snapshots (format-spec.md,
//! "Classic archives").
//!
//! The top layer: it reads snapshots through [`crate::repository::walk`], writes them
//! through [`crate::ops::backup`], and test-restores database dumps through [`crate::pg`].

// Writing archives from snapshots (export, mirror) into tier folders.
pub mod export;
pub(crate) mod folder;
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
// Checking and importing archives made elsewhere (the old system's, or exported ones).
pub mod discover;
mod dump;
pub mod import;
pub mod reader;
pub mod safety;
mod spool;
pub mod verify;

pub use manifest::{ARCHIVE_MANIFEST, ArchiveManifest, Member, MemberKind};
pub use name::{ArchiveName, Tier};
// Checking and importing.
pub use self::{
    import::{ImportOptions, ImportOutcome, ImportPlan, import, plan_import},
    verify::{ArchiveReport, VerifyArchiveOptions, verify_archive},
};
