//! The disk the repository lives on: how full it is, against the original spec's
//! thresholds (refuse below `MIN_FREE_SPACE`, alert above `SPACE_ALERT_PERCENT`, stronger
//! compression above 90%).

use crate::error::{Error, ErrorKind, Result};
use std::path::Path;

/// Disk use above which new data is compressed harder (the original spec's
/// "Compresión si >90%").
pub const COMPRESS_HARDER_PERCENT: f64 = 90.0;

/// Free and used space of one filesystem.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DiskUsage {
    /// Size of the filesystem, bytes.
    pub total: u64,
    /// Bytes an unprivileged writer may still use.
    pub available: u64,
    /// Bytes in use (total minus free, root's reserve counted as used by others).
    pub used: u64,
}

impl DiskUsage {
    /// The filesystem holding `path` (which must exist).
    ///
    /// # Errors
    /// `Io` when the filesystem cannot be asked.
    pub fn of(path: &Path) -> Result<Self> {
        let st = rustix::fs::statvfs(path).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read the free space of {}: {e}", path.display()),
            )
        })?;
        let total = st.f_blocks.saturating_mul(st.f_frsize);
        let free = st.f_bfree.saturating_mul(st.f_frsize);
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        Ok(Self {
            total,
            available,
            used: total.saturating_sub(free),
        })
    }

    /// Percent in use, as `df` computes it: used / (used + available), rounded up.
    pub fn used_percent(&self) -> f64 {
        let denom = self.used.saturating_add(self.available);
        if denom == 0 {
            return 0.0;
        }
        (self.used as f64 * 100.0 / denom as f64).min(100.0)
    }

    /// Whether use has passed `alert_percent`.
    pub fn above(&self, alert_percent: f64) -> bool {
        self.used_percent() > alert_percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn used_percent_counts_the_reserve_as_df_does() {
        let d = DiskUsage {
            total: 1000,
            available: 50,
            used: 900,
        };
        // 900 / (900 + 50): the 50 bytes reserved for root are nobody's to use.
        assert!((d.used_percent() - 94.736).abs() < 0.01);
        assert!(d.above(90.0));
        assert!(!d.above(95.0));
        let empty = DiskUsage {
            total: 0,
            available: 0,
            used: 0,
        };
        assert_eq!(empty.used_percent(), 0.0);
    }

    #[test]
    fn the_temp_dir_has_a_readable_usage() {
        let d = DiskUsage::of(&std::env::temp_dir()).unwrap();
        assert!(d.total > 0 && d.used <= d.total);
    }
}
