//! A fault-injecting [`Storage`] wrapper: the crash and failure tests' instrument.
//!
//! It counts mutating operations (put and delete). At the Nth it fails, and it keeps failing
//! every later mutation, which is what a process sees when it dies at that instant: nothing
//! after the fault becomes durable. [`FaultMode::Torn`] also leaves a damaged half-object
//! behind, like a store without atomic writes would.

use super::{Kind, Storage};
use crate::error::{Error, ErrorKind, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// What happens at the faulting operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The operation fails cleanly: no trace of it.
    Fail,
    /// A put leaves the first half of its bytes under the final name, then fails.
    Torn,
    /// The operation takes effect, then reports failure: an EIO from the directory fsync
    /// after a rename, where the object is in place but its durability is unconfirmed.
    Applied,
}

/// Wraps a store; fails the `fail_at`-th mutation (0-based) and all after it.
pub struct FaultyStorage<S> {
    inner: S,
    fail_at: u64,
    mode: FaultMode,
    mutations: AtomicU64,
}

impl<S: Storage> FaultyStorage<S> {
    /// Fail from the `fail_at`-th mutation on (`u64::MAX`: never, just count).
    pub fn new(inner: S, fail_at: u64, mode: FaultMode) -> Self {
        Self {
            inner,
            fail_at,
            mode,
            mutations: AtomicU64::new(0),
        }
    }

    /// Mutations attempted so far.
    pub fn mutations(&self) -> u64 {
        self.mutations.load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn tick(&self) -> (bool, bool) {
        let n = self.mutations.fetch_add(1, Ordering::SeqCst);
        (n >= self.fail_at, n == self.fail_at)
    }

    fn fault(op: &str) -> Error {
        Error::new(ErrorKind::Storage, format!("injected fault during {op}"))
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let (failing, first) = self.tick();
        if !failing {
            return self.inner.put(kind, name, data);
        }
        match self.mode {
            FaultMode::Torn if first => self.inner.put(kind, name, &data[..data.len() / 2])?,
            FaultMode::Applied if first => self.inner.put(kind, name, data)?,
            _ => {}
        }
        Err(Self::fault("put"))
    }
    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let (failing, first) = self.tick();
        if !failing {
            return self.inner.replace(kind, name, data);
        }
        if first && self.mode == FaultMode::Applied {
            self.inner.replace(kind, name, data)?;
        }
        Err(Self::fault("replace"))
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.get_range(kind, name, offset, len)
    }
    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let (failing, first) = self.tick();
        if !failing {
            return self.inner.delete(kind, name);
        }
        if first && self.mode == FaultMode::Applied {
            self.inner.delete(kind, name)?;
        }
        Err(Self::fault("delete"))
    }
}
