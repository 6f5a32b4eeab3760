//! Repository locks (format-spec.md, "Locks").
//!
//! A lock is a small JSON object under `locks/` naming host, pid, time, operation and
//! whether it is exclusive. Taking one: write ours, list all, and if any other lock
//! conflicts (either side exclusive), remove ours and retry until the wait runs out. Locks
//! of dead processes on this host are removed on sight; a foreign host's lock is never
//! guessed stale, it is reported with who holds it. Writing before looking makes the
//! protocol work on stores without atomic create-if-absent.

use crate::error::{Error, ErrorKind, Result};
use crate::id::LockId;
use crate::storage::{Kind, Storage};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared (backups) or exclusive (destructive work, repair).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Many may hold it together; excludes exclusive holders.
    Shared,
    /// Excludes every other lock.
    Exclusive,
}

/// What a lock object says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockInfo {
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// The command holding it.
    pub operation: String,
    /// Shared or exclusive.
    pub mode: LockMode,
}

/// Held while alive; removes the lock object on drop.
pub struct LockGuard {
    storage: Arc<dyn Storage>,
    id: LockId,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.storage.delete(Kind::Lock, &self.id.to_hex());
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn process_alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    // EPERM means it exists but belongs to someone else: alive.
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Take a lock, waiting at most `wait` for conflicting holders to go away.
///
/// # Errors
/// [`ErrorKind::Locked`] naming the holder when the wait runs out; `Storage` errors.
pub fn acquire(
    storage: Arc<dyn Storage>,
    mode: LockMode,
    operation: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let me = LockInfo {
        host: hostname(),
        pid: std::process::id(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        operation: operation.to_string(),
        mode,
    };
    let body = serde_json::to_vec(&me).expect("serializable");
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(50);
    loop {
        let id = LockId::random();
        storage.put(Kind::Lock, &id.to_hex(), &body)?;
        let guard = LockGuard {
            storage: Arc::clone(&storage),
            id,
        };
        let Some(holder) = conflict(storage.as_ref(), &id, &me)? else {
            return Ok(guard);
        };
        drop(guard);
        if crate::interrupted() {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "interrupted while waiting for the repository lock",
            ));
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "repository is locked by host {} pid {} ({}, {} lock since {}); wait for it to finish, or if that process is gone, run `masclet unlock`",
                    holder.host,
                    holder.pid,
                    holder.operation,
                    if holder.mode == LockMode::Exclusive {
                        "exclusive"
                    } else {
                        "shared"
                    },
                    holder.time
                ),
            ));
        }
        // Random jitter breaks the tie when two exclusive lockers keep seeing each other.
        let jitter = u64::from(crate::crypto::random_array::<1>()[0]);
        std::thread::sleep(pause + Duration::from_millis(jitter));
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The first live lock other than `mine` that conflicts with `me`; stale local locks are removed.
fn conflict(storage: &dyn Storage, mine: &LockId, me: &LockInfo) -> Result<Option<LockInfo>> {
    for (name, _) in storage.list(Kind::Lock)? {
        if name == mine.to_hex() {
            continue;
        }
        let info = match storage.get(Kind::Lock, &name) {
            Ok(b) => serde_json::from_slice::<LockInfo>(&b).ok(),
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let Some(info) = info else {
            // An unreadable lock (torn write of a crashed holder) cannot be attributed; treat
            // it as exclusive so nobody proceeds on a guess.
            let unknown = LockInfo {
                host: "?".into(),
                pid: 0,
                time: "?".into(),
                operation: format!("unreadable lock {name}"),
                mode: LockMode::Exclusive,
            };
            return Ok(Some(unknown));
        };
        if info.host == me.host && !process_alive(info.pid) {
            storage.delete(Kind::Lock, &name)?;
            continue;
        }
        if info.mode == LockMode::Exclusive || me.mode == LockMode::Exclusive {
            return Ok(Some(info));
        }
    }
    Ok(None)
}

/// Every lock object, for `masclet unlock` and diagnostics.
///
/// # Errors
/// `Storage` errors.
pub fn list(storage: &dyn Storage) -> Result<Vec<(String, Option<LockInfo>)>> {
    let mut out = Vec::new();
    for (name, _) in storage.list(Kind::Lock)? {
        let info = storage
            .get(Kind::Lock, &name)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push((name, info));
    }
    Ok(out)
}

/// Remove locks of dead local processes (and, with `all`, every lock).
///
/// # Errors
/// `Storage` errors.
pub fn remove_stale(storage: &dyn Storage, all: bool) -> Result<usize> {
    let host = hostname();
    let mut removed = 0;
    for (name, info) in list(storage)? {
        let stale = match &info {
            Some(i) => i.host == host && !process_alive(i.pid),
            None => true,
        };
        if all || stale {
            storage.delete(Kind::Lock, &name)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStorage;

    #[test]
    fn shared_coexist_exclusive_excludes() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let a = acquire(Arc::clone(&s), LockMode::Shared, "backup", Duration::ZERO).unwrap();
        let _b = acquire(Arc::clone(&s), LockMode::Shared, "backup", Duration::ZERO).unwrap();
        let err = acquire(
            Arc::clone(&s),
            LockMode::Exclusive,
            "gc",
            Duration::from_millis(100),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(a);
        drop(_b);
        let _x = acquire(Arc::clone(&s), LockMode::Exclusive, "gc", Duration::ZERO).unwrap();
        assert!(acquire(Arc::clone(&s), LockMode::Shared, "backup", Duration::ZERO).is_err());
    }

    #[test]
    fn dead_local_holder_is_cleared_foreign_is_not() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let dead = LockInfo {
            host: hostname(),
            pid: 0x7fff_fff0,
            time: "t".into(),
            operation: "backup".into(),
            mode: LockMode::Exclusive,
        };
        s.put(
            Kind::Lock,
            &LockId::random().to_hex(),
            &serde_json::to_vec(&dead).unwrap(),
        )
        .unwrap();
        let g = acquire(Arc::clone(&s), LockMode::Exclusive, "gc", Duration::ZERO).unwrap();
        drop(g);
        let foreign = LockInfo {
            host: "elsewhere".into(),
            pid: 1,
            ..dead
        };
        s.put(
            Kind::Lock,
            &LockId::random().to_hex(),
            &serde_json::to_vec(&foreign).unwrap(),
        )
        .unwrap();
        let err = acquire(
            Arc::clone(&s),
            LockMode::Shared,
            "backup",
            Duration::from_millis(50),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("host elsewhere pid 1"), "{err}");
        assert_eq!(
            s.list(Kind::Lock).unwrap().len(),
            1,
            "our own attempt left nothing behind"
        );
    }
}
