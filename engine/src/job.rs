//! The operated system around the engine, as the original spec describes it: the nightly
//! job (`masclet run -t TIER`), the record each run leaves (history, metrics, the
//! Prometheus textfile), the operation log, alerts and their channels, cleanup, the space
//! policy, status and the HTML report.
//!
//! The top layer: it calls [`crate::ops`], [`crate::pg`] and [`crate::archive`] as the
//! commands do, and adds what an unattended job needs around them: one run at a time,
//! each step timed and recorded, the worst outcome deciding the exit, and someone told.

pub mod alert;
pub mod cleanup;
pub mod log;
pub mod nightly;
pub mod notify;
pub mod prom;
pub mod record;
pub mod report;
pub mod space;
pub mod status;

pub use alert::{Alert, AlertKey};
pub use record::{History, Metrics, RunRecord, StepOutcome, StepRecord};
pub use space::DiskUsage;
