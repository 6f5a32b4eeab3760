//! Where repository objects live.
//!
//! A repository is a set of objects addressed by `(Kind, name)`, written whole and never
//! modified. The trait asks nothing a plain object store cannot give: no rename, no append,
//! no partial overwrite. That is what lets an S3-compatible store back a repository later;
//! atomicity is the implementation's job (the local one writes a temp file, fsyncs it,
//! renames it and fsyncs the directory).
//!
//! Durability contract: when [`Storage::put`] or [`Storage::delete`] returns `Ok`, the change
//! survives a crash or power loss. A failed `put` leaves either no object or (on stores
//! without atomic writes, simulated by [`FaultyStorage`]) a damaged one that readers must
//! detect: every object is self-checking (magic, length, MAC).

mod faulty;
mod local;
mod memory;

pub use faulty::{FaultMode, FaultyStorage};
pub use local::LocalStorage;
pub use memory::MemoryStorage;

use crate::error::Result;

/// The kinds of objects in a repository; each kind is its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The single `config` object.
    Config,
    /// Key slots.
    Key,
    /// Pack files.
    Pack,
    /// Snapshot objects.
    Snapshot,
    /// Lock objects.
    Lock,
}

impl Kind {
    /// Every kind, in the order `check` and listings use.
    pub const ALL: [Kind; 5] = [
        Kind::Config,
        Kind::Key,
        Kind::Pack,
        Kind::Snapshot,
        Kind::Lock,
    ];

    /// The directory (local) or key prefix (object stores) of this kind.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "packs",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
        }
    }
}

/// Name of the one config object.
pub const CONFIG_NAME: &str = "config";

/// A place that stores whole, immutable objects.
pub trait Storage: Send + Sync {
    /// Store `data` as `(kind, name)`, replacing nothing: writing a name that exists is an
    /// error for every kind but [`Kind::Lock`]. Durable when this returns `Ok`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] when the write fails (a full disk says so).
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;

    /// [`Storage::put`] of the concatenation of `parts`, so that a caller holding an object
    /// in pieces (a pack: its header, each sealed chunk, its trailer) need not assemble a
    /// second copy in memory. The default concatenates and puts; the local store writes the
    /// pieces with vectored writes (an object store could upload them as one body).
    ///
    /// # Errors
    /// As [`Storage::put`].
    fn put_parts(&self, kind: Kind, name: &str, parts: &[&[u8]]) -> Result<()> {
        self.put(kind, name, &parts.concat())
    }

    /// Atomically replace an existing object (or create it): readers see the old bytes or
    /// the new, never a mix. Used only to rewrite a snapshot's tags under its own id.
    /// Durable when this returns `Ok`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] when the write fails.
    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;

    /// The whole object.
    ///
    /// # Errors
    /// [`crate::ErrorKind::NotFound`] if absent, [`crate::ErrorKind::Storage`] on I/O failure.
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;

    /// `len` bytes from `offset`. Reading past the end is [`crate::ErrorKind::Corrupt`]: an
    /// index or trailer pointed outside the object, so the object or its index is damaged.
    ///
    /// # Errors
    /// As [`Storage::get`], plus `Corrupt` for a short object.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;

    /// Every object of `kind` with its size in bytes, in no particular order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] on I/O failure.
    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>>;

    /// Remove an object. Removing an absent object is not an error. Durable on `Ok`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] on I/O failure.
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;

    /// Remove several objects of one kind; all removals are durable on `Ok`. The default
    /// removes them one by one; a store that can make many removals durable at once (the
    /// local store syncs each directory once) overrides it. After an error, any subset of
    /// the objects may be gone.
    ///
    /// # Errors
    /// As [`Storage::delete`].
    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        names.iter().try_for_each(|n| self.delete(kind, n))
    }

    /// Leftovers of writes that never finished (the temporary files of a killed process)
    /// untouched for at least `idle`: how many and their bytes. Stores that write objects
    /// whole have none (the default).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] on I/O failure.
    fn leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        let _ = idle;
        Ok((0, 0))
    }

    /// Remove the leftovers [`Storage::leftovers`] counts. Only under the exclusive lock,
    /// with `idle` at least the lock stale limit: a writer that holds a live lock touches
    /// its temporary file more recently than that.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Storage`] on I/O failure.
    fn remove_leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        let _ = idle;
        Ok((0, 0))
    }
}

impl<T: Storage + ?Sized> Storage for std::sync::Arc<T> {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        (**self).put(kind, name, data)
    }
    fn put_parts(&self, kind: Kind, name: &str, parts: &[&[u8]]) -> Result<()> {
        (**self).put_parts(kind, name, parts)
    }
    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        (**self).replace(kind, name, data)
    }
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        (**self).get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        (**self).get_range(kind, name, offset, len)
    }
    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        (**self).list(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        (**self).delete(kind, name)
    }
    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        (**self).delete_many(kind, names)
    }
    fn leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        (**self).leftovers(idle)
    }
    fn remove_leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        (**self).remove_leftovers(idle)
    }
}

/// Check a name for use as an object name: the local store turns it into a path.
pub(crate) fn check_name(kind: Kind, name: &str) -> Result<()> {
    let ok = match kind {
        Kind::Config => name == CONFIG_NAME,
        _ => {
            name.len() == 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }
    };
    if ok {
        Ok(())
    } else {
        Err(crate::Error::invalid(format!(
            "invalid object name {name:?} for {kind:?}"
        )))
    }
}
