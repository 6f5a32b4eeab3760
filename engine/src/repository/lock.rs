//! Repository locks (format-spec.md, "Locks").
//!
//! A lock is a small JSON object under `locks/` naming host, pid, time, operation and
//! whether it is exclusive. Taking one: write ours, list all, and if any other lock
//! conflicts (either side exclusive), remove ours and retry until the wait runs out. Writing
//! before looking makes the protocol work on stores without atomic create-if-absent.
//!
//! Staleness: a holder refreshes its lock's time every `stale / 6`. A lock of a dead process
//! on this host is removed on sight; any lock not refreshed for `stale` (30 minutes unless
//! `MASCLET_LOCK_STALE_SECS` says otherwise) is presumed abandoned and removed with a
//! warning. Because of that, a holder that could not refresh in time (frozen, suspended)
//! must assume someone took over: [`LockGuard::ensure_held`] fails, and every operation calls
//! it right before its commit point.

use crate::disk::id::LockId;
use crate::error::{Error, ErrorKind, Result};
use crate::repository::storage::{Kind, Storage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
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
    /// When it was taken or last refreshed (RFC 3339).
    pub time: String,
    /// The command holding it.
    pub operation: String,
    /// Shared or exclusive.
    pub mode: LockMode,
}

/// How long a lock may go without a refresh before others presume it abandoned.
pub fn stale_after() -> Duration {
    let secs = std::env::var("MASCLET_LOCK_STALE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800u64);
    Duration::from_secs(secs.max(1))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn age(info: &LockInfo) -> Option<Duration> {
    let t = chrono::DateTime::parse_from_rfc3339(&info.time).ok()?;
    (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .to_std()
        .ok()
}

struct Shared {
    storage: Arc<dyn Storage>,
    id: LockId,
    info: Mutex<LockInfo>,
    last_refresh: Mutex<Instant>,
    lost: AtomicBool,
    stale: Duration,
}

impl Shared {
    /// Rewrite our lock with a fresh time, unless it was taken from us.
    fn refresh(&self) {
        let name = self.id.to_hex();
        if self.last_refresh.lock().expect("poisoned").elapsed() >= self.stale {
            self.lost.store(true, Ordering::SeqCst);
            return;
        }
        match self.storage.get(Kind::Lock, &name) {
            Ok(_) => {}
            Err(_) => {
                self.lost.store(true, Ordering::SeqCst);
                return;
            }
        }
        let body = {
            let mut info = self.info.lock().expect("poisoned");
            info.time = now_rfc3339();
            serde_json::to_vec(&*info).expect("serializable")
        };
        if self.storage.replace(Kind::Lock, &name, &body).is_ok() {
            *self.last_refresh.lock().expect("poisoned") = Instant::now();
        }
    }
}

fn lost() -> Error {
    Error::new(
        ErrorKind::Locked,
        "this process lost its repository lock (it was suspended or stalled longer than the stale limit, and another process may have taken over); nothing was committed, run the command again",
    )
}

/// Held while alive: refreshed in the background, removed on drop.
pub struct LockGuard {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl LockGuard {
    /// Fail unless the lock is certainly still ours: present in storage and refreshed
    /// within the stale limit. Called right before every commit point.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] when the lock was lost; nothing must be committed then.
    pub fn ensure_held(&self) -> Result<()> {
        self.ensure_fresh()?;
        let s = &self.shared;
        if s.storage.get(Kind::Lock, &s.id.to_hex()).is_err() {
            s.lost.store(true, Ordering::SeqCst);
            return Err(lost());
        }
        Ok(())
    }

    /// The part of [`LockGuard::ensure_held`] that needs no storage access: the lock was
    /// refreshed within the stale limit and never found taken. For use inside an index
    /// transaction, after the full check: another process presumes a lock abandoned only
    /// once it has gone a whole stale period unrefreshed, which this sees locally.
    ///
    /// # Errors
    /// [`ErrorKind::Locked`] when the lock was lost.
    pub fn ensure_fresh(&self) -> Result<()> {
        let s = &self.shared;
        let overdue = s.last_refresh.lock().expect("poisoned").elapsed() >= s.stale;
        if overdue || s.lost.load(Ordering::SeqCst) {
            s.lost.store(true, Ordering::SeqCst);
            return Err(lost());
        }
        Ok(())
    }

    /// Whether this lock is shared or exclusive.
    pub(crate) fn mode(&self) -> LockMode {
        self.shared.info.lock().expect("poisoned").mode
    }

    fn start(shared: Arc<Shared>) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let interval = shared.stale / 6;
        let worker = Arc::clone(&shared);
        let refresher = std::thread::Builder::new()
            .name("masclet-lock".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                    worker.refresh();
                }
            })
            .ok();
        Self {
            shared,
            stop: Some(tx),
            refresher,
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let _ = self
            .shared
            .storage
            .delete(Kind::Lock, &self.shared.id.to_hex());
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The pid in the name of a temporary of masclet's, `<prefix><pid>-<anything>`, when the
/// name has that form and that process is gone on this host: the temporary was left by a
/// process killed outright, and may be removed.
pub(crate) fn dead_owner(name: &std::ffi::OsStr, prefix: &str) -> Option<u32> {
    let pid = name
        .to_str()?
        .strip_prefix(prefix)?
        .split_once('-')?
        .0
        .parse::<u32>()
        .ok()?;
    (!process_alive(pid)).then_some(pid)
}

/// Whether process `pid` exists on this host (another user's counts: it is not ours to
/// judge dead).
pub(crate) fn process_alive(pid: u32) -> bool {
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
    warnings: &mut Vec<String>,
) -> Result<LockGuard> {
    let stale = stale_after();
    let me = LockInfo {
        host: hostname(),
        pid: std::process::id(),
        time: now_rfc3339(),
        operation: operation.to_string(),
        mode,
    };
    // A wait too long to represent (`--lock-wait` of centuries) waits forever.
    let deadline = Instant::now().checked_add(wait);
    let mut pause = Duration::from_millis(50);
    loop {
        let id = LockId::random();
        let me = LockInfo {
            time: now_rfc3339(),
            ..me.clone()
        };
        storage.put(
            Kind::Lock,
            &id.to_hex(),
            &serde_json::to_vec(&me).expect("serializable"),
        )?;
        let conflict = conflict(storage.as_ref(), &id, &me, stale, warnings);
        let Ok(None) = conflict else {
            let _ = storage.delete(Kind::Lock, &id.to_hex());
            let holder = conflict?.expect("matched above");
            if crate::interrupted() {
                return Err(Error::new(
                    ErrorKind::Interrupted,
                    "interrupted while waiting for the repository lock",
                ));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(locked_by(&holder));
            }
            // Random jitter breaks the tie when two exclusive lockers keep seeing each other.
            let jitter = u64::from(crate::disk::random::random_array::<1>()[0]);
            std::thread::sleep(pause + Duration::from_millis(jitter));
            pause = (pause * 2).min(Duration::from_secs(2));
            continue;
        };
        let shared = Arc::new(Shared {
            storage: Arc::clone(&storage),
            id,
            info: Mutex::new(me),
            last_refresh: Mutex::new(Instant::now()),
            lost: AtomicBool::new(false),
            stale,
        });
        return Ok(LockGuard::start(shared));
    }
}

fn locked_by(holder: &LockInfo) -> Error {
    // `unlock` removes only this host's dead holders; another host's lock needs `--all`,
    // which is safe only once the operator knows nothing runs there.
    let fix = if holder.host == hostname() {
        "run `masclet unlock`".to_string()
    } else {
        format!(
            "run `masclet unlock --all` once you know nothing runs on host {}",
            holder.host
        )
    };
    Error::new(
        ErrorKind::Locked,
        format!(
            "repository is locked by host {} pid {} ({}, {} lock, last seen {}); wait for it to finish, or if that process is gone, {fix}",
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
    )
}

/// The first live lock other than `mine` that conflicts with `me`; stale local locks are removed.
fn conflict(
    storage: &dyn Storage,
    mine: &LockId,
    me: &LockInfo,
    stale: Duration,
    warnings: &mut Vec<String>,
) -> Result<Option<LockInfo>> {
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
        if age(&info).is_some_and(|a| a >= stale) {
            warnings.push(format!(
                "removed a stale lock of host {} pid {} ({}), not refreshed since {}",
                info.host, info.pid, info.operation, info.time
            ));
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
    use crate::repository::storage::MemoryStorage;

    fn take(s: &Arc<dyn Storage>, mode: LockMode, op: &str, wait: Duration) -> Result<LockGuard> {
        acquire(Arc::clone(s), mode, op, wait, &mut vec![])
    }

    #[test]
    fn shared_coexist_exclusive_excludes() {
        let s: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let a = take(&s, LockMode::Shared, "backup", Duration::ZERO).unwrap();
        let _b = take(&s, LockMode::Shared, "backup", Duration::ZERO).unwrap();
        let err = take(&s, LockMode::Exclusive, "gc", Duration::from_millis(100))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::Locked);
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.to_string().contains("run `masclet unlock`"), "{err}");
        drop(a);
        drop(_b);
        let _x = take(&s, LockMode::Exclusive, "gc", Duration::ZERO).unwrap();
        assert!(take(&s, LockMode::Shared, "backup", Duration::ZERO).is_err());
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
        let g = take(&s, LockMode::Exclusive, "gc", Duration::ZERO).unwrap();
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
        let err = take(&s, LockMode::Shared, "backup", Duration::from_millis(50))
            .err()
            .unwrap();
        assert!(err.to_string().contains("host elsewhere pid 1"), "{err}");
        // Plain `unlock` leaves another host's lock: the advice must be `--all`.
        assert!(err.to_string().contains("`masclet unlock --all`"), "{err}");
        assert_eq!(
            s.list(Kind::Lock).unwrap().len(),
            1,
            "our own attempt left nothing behind"
        );
    }
}
