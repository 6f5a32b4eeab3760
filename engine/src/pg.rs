//! PostgreSQL as a source: consistent dumps streamed into the store, the figures that prove
//! a restore right, test restores, and the recovery steps (format-spec.md, "Database
//! snapshots"; docs/recovery.md).
//!
//! The layer above [`crate::ops`]: it runs the real client programs (pg_dump, pg_dumpall,
//! psql) and talks to the server with the `postgres` client for the held transaction and
//! the checks; the bytes go through [`crate::ops::backup`] and come back through
//! [`crate::ops::restore`] like any other snapshot's.

pub mod backup;
pub mod conn;
mod dump;
pub mod manifest;
mod passfile;
pub mod recover;
pub(crate) mod scratch;
pub mod target;
pub mod validate;
pub mod verify;

pub use backup::{DEFAULT_MIN_FREE, PgBackupOptions, PgBackupSummary, backup_pg, prechecks};
pub use conn::{Tools, connect};
pub use manifest::{DumpShape, Manifest};
pub use recover::{MaintainSummary, Promotion, RestoreDbOptions, maintain, promote, restore_to_db};
pub use target::Target;
pub use validate::{Check, TableCount};
pub use verify::{VerifyOptions, VerifyReport, verify};
