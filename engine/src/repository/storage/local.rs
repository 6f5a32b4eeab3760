//! A repository in a local directory (format-spec.md, "Repository layout").
//!
//! Objects are files: `config`, `keys/<id>`, `packs/<id[0..2]>/<id>`, `snapshots/<id>`,
//! `locks/<id>`. A put writes `tmp/<random>`, fsyncs it, renames it into place and fsyncs
//! the directory, so an object is either whole under its final name or absent. Directories
//! are created 0700 and files 0600 whatever the umask.

use super::{CONFIG_NAME, Kind, Storage, check_name};
use crate::error::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How many pack files stay open between range reads (restore reads many ranges per pack).
const OPEN_FILE_CACHE: usize = 32;

/// A repository directory on a local filesystem.
pub struct LocalStorage {
    root: PathBuf,
    open_files: Mutex<HashMap<PathBuf, Arc<File>>>,
}

/// Create a private directory if absent. A new directory's entry lives in its parent, so
/// the parent is synced too: otherwise a power loss could take back `packs/ab/` along with
/// a pack the index already points at.
fn mkdir_private(path: &Path) -> std::io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
        Ok(()) => match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) => sync_dir(parent),
            None => sync_dir(Path::new(".")),
        },
    }
}

#[cfg(test)]
thread_local! {
    /// Directories synced by this thread, for the tests of what gets synced.
    static SYNCED: std::cell::RefCell<Vec<PathBuf>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    #[cfg(test)]
    SYNCED.with(|s| s.borrow_mut().push(path.to_path_buf()));
    File::open(path)?.sync_all()
}

/// The size of a listed regular file; `None` for anything else, and for an entry that
/// vanished since the directory was read (a lock released by another process meanwhile).
fn listed_size(e: &fs::DirEntry) -> std::io::Result<Option<u64>> {
    match e.metadata() {
        Ok(m) if m.is_file() => Ok(Some(m.len())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

impl LocalStorage {
    /// Create the directory layout for a new repository at `root`, which must be absent or
    /// an empty directory.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] if `root` holds anything; `Storage` on I/O failure.
    pub fn create(root: &Path) -> Result<Self> {
        if root.exists() {
            let mut entries = fs::read_dir(root)
                .map_err(|e| Error::storage(format!("reading {}", root.display()), e))?;
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} is not empty: choose a new directory for the repository",
                    root.display()
                )));
            }
        }
        let wrap = |e| Error::storage(format!("creating repository at {}", root.display()), e);
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(wrap)?;
        }
        mkdir_private(root).map_err(wrap)?;
        fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(wrap)?;
        for dir in ["keys", "packs", "snapshots", "locks", "tmp", "index"] {
            mkdir_private(&root.join(dir)).map_err(wrap)?;
        }
        sync_dir(root).map_err(wrap)?;
        Ok(Self {
            root: root.to_path_buf(),
            open_files: Mutex::default(),
        })
    }

    /// Open the repository at `root`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if there is no repository there; [`ErrorKind::InvalidInput`]
    /// if it belongs to another user.
    pub fn open(root: &Path) -> Result<Self> {
        let meta = fs::metadata(root.join(CONFIG_NAME)).map_err(|_| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "no masclet repository at {} (create one with `masclet init`)",
                    root.display()
                ),
            )
        })?;
        let uid = rustix::process::geteuid().as_raw();
        if meta.uid() != uid && uid != 0 {
            return Err(Error::invalid(format!(
                "repository {} belongs to uid {}, not to you (uid {uid}); run masclet as its owner",
                root.display(),
                meta.uid()
            )));
        }
        Ok(Self {
            root: root.to_path_buf(),
            open_files: Mutex::default(),
        })
    }

    /// The repository directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where this repository keeps its SQLite index (a cache, not a storage object).
    pub fn index_path(&self) -> PathBuf {
        self.root.join("index").join("index.sqlite")
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.join(CONFIG_NAME),
            Kind::Pack => self.root.join(kind.dir()).join(&name[..2]).join(name),
            _ => self.root.join(kind.dir()).join(name),
        }
    }

    fn cached_file(&self, path: &Path) -> std::io::Result<Arc<File>> {
        let mut cache = self.open_files.lock().expect("poisoned");
        if let Some(f) = cache.get(path) {
            return Ok(Arc::clone(f));
        }
        let f = Arc::new(File::open(path)?);
        if cache.len() >= OPEN_FILE_CACHE {
            cache.clear();
        }
        cache.insert(path.to_path_buf(), Arc::clone(&f));
        Ok(f)
    }

    fn not_found(kind: Kind, name: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            format!("{kind:?} object {name} not found"),
        )
    }
}

impl LocalStorage {
    /// Write `parts` (one after the other) to `tmp/`, fsync it, rename it over `path`, fsync
    /// the directory: the object is whole under its name or not there.
    fn write_atomic(&self, kind: Kind, name: &str, path: &Path, parts: &[&[u8]]) -> Result<()> {
        let what = || format!("writing {}", path.display());
        let dir = path.parent().expect("object paths have a parent");
        if kind == Kind::Pack {
            mkdir_private(dir).map_err(|e| Error::storage(what(), e))?;
        }
        let tmp = self.root.join("tmp").join(format!(
            "{name}.{}.tmp",
            crate::disk::id::to_hex(&crate::disk::random::random_array::<6>())
        ));
        let result = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            write_all_vectored(&mut f, parts)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Error::storage(what(), e));
        }
        self.open_files.lock().expect("poisoned").remove(path);
        Ok(())
    }
}

/// `write_all` for several buffers, a `writev` at a time (each takes up to 1024 of them).
fn write_all_vectored(f: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        parts.iter().map(|p| std::io::IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    std::io::IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match f.write_vectored(rest) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => std::io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Storage for LocalStorage {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        self.put_parts(kind, name, &[data])
    }

    fn put_parts(&self, kind: Kind, name: &str, parts: &[&[u8]]) -> Result<()> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        if kind != Kind::Lock && path.exists() {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("{} already exists", path.display()),
            ));
        }
        self.write_atomic(kind, name, &path, parts)
    }

    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        self.write_atomic(kind, name, &path, &[data])
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Self::not_found(kind, name),
            _ => Error::storage(format!("reading {}", path.display()), e),
        })
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        let f = self.cached_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Self::not_found(kind, name),
            _ => Error::storage(format!("opening {}", path.display()), e),
        })?;
        let len = usize::try_from(len).map_err(|_| Error::corrupt("range too large"))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => Error::corrupt(format!(
                    "{} truncated: cannot read {len} bytes at offset {offset}",
                    path.display()
                )),
                _ => Error::storage(format!("reading {}", path.display()), e),
            })?;
        Ok(buf)
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        if kind == Kind::Config {
            return Ok(match fs::metadata(self.root.join(CONFIG_NAME)) {
                Ok(m) => vec![(CONFIG_NAME.to_string(), m.len())],
                Err(_) => vec![],
            });
        }
        let base = self.root.join(kind.dir());
        let mut dirs = vec![base.clone()];
        if kind == Kind::Pack {
            dirs.clear();
            for e in fs::read_dir(&base)
                .map_err(|e| Error::storage(format!("listing {}", base.display()), e))?
            {
                let e = e.map_err(|e| Error::storage(format!("listing {}", base.display()), e))?;
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(e.path());
                }
            }
        }
        let mut out = Vec::new();
        for dir in dirs {
            let wrap = |e| Error::storage(format!("listing {}", dir.display()), e);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // A pack directory removed since the packs/ listing holds nothing now.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != base => continue,
                Err(e) => return Err(wrap(e)),
            };
            for e in entries {
                let e = e.map_err(wrap)?;
                let Some(name) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if check_name(kind, &name).is_err() {
                    continue;
                }
                if let Some(len) = listed_size(&e).map_err(wrap)? {
                    out.push((name, len));
                }
            }
        }
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        check_name(kind, name)?;
        let path = self.path(kind, name);
        self.open_files.lock().expect("poisoned").remove(&path);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::storage(format!("deleting {}", path.display()), e)),
        }
        sync_dir(path.parent().expect("has parent"))
            .map_err(|e| Error::storage(format!("syncing after deleting {}", path.display()), e))
    }

    fn delete_many(&self, kind: Kind, names: &[String]) -> Result<()> {
        // One directory sync per directory touched, not per file: gc deletes hundreds of
        // packs and forget hundreds of snapshots at a time.
        let mut dirs = std::collections::BTreeSet::new();
        for name in names {
            check_name(kind, name)?;
            let path = self.path(kind, name);
            self.open_files.lock().expect("poisoned").remove(&path);
            match fs::remove_file(&path) {
                Ok(()) => {
                    dirs.insert(path.parent().expect("has parent").to_path_buf());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::storage(format!("deleting {}", path.display()), e)),
            }
        }
        dirs.iter().try_for_each(|d| {
            sync_dir(d)
                .map_err(|e| Error::storage(format!("syncing {} after deleting", d.display()), e))
        })
    }

    fn leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        self.idle_tmp(idle, false)
    }

    fn remove_leftovers(&self, idle: std::time::Duration) -> Result<(u64, u64)> {
        self.idle_tmp(idle, true)
    }
}

impl LocalStorage {
    /// Count (and with `remove`, delete) the files in `tmp/` not modified for `idle`. A
    /// file that vanishes meanwhile (its write finished or failed) is skipped.
    fn idle_tmp(&self, idle: std::time::Duration, remove: bool) -> Result<(u64, u64)> {
        let dir = self.root.join("tmp");
        let what = |e| Error::storage(format!("listing {}", dir.display()), e);
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            r => r.map_err(what)?,
        };
        let now = std::time::SystemTime::now();
        let (mut count, mut bytes) = (0, 0);
        for entry in entries {
            let path = entry.map_err(what)?.path();
            let meta = match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                r => r.map_err(what)?,
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if !meta.is_file() || age.is_none_or(|a| a < idle) {
                continue;
            }
            if remove {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    r => {
                        r.map_err(|e| Error::storage(format!("removing {}", path.display()), e))?
                    }
                }
            }
            count += 1;
            bytes += meta.len();
        }
        if remove && count > 0 {
            sync_dir(&dir).map_err(what)?;
        }
        Ok((count, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every directory a repository creates is synced in its parent: the repository in
    /// its parent at init, and a new `packs/xx/` in `packs/` when its first pack lands.
    #[test]
    fn new_directories_are_synced_in_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        SYNCED.with(|s| s.borrow_mut().clear());
        let s = LocalStorage::create(&root).unwrap();
        let synced = SYNCED.with(|s| s.borrow().clone());
        assert!(synced.contains(&dir.path().to_path_buf()), "{synced:?}");
        assert!(synced.contains(&root), "{synced:?}");
        SYNCED.with(|s| s.borrow_mut().clear());
        s.put(Kind::Pack, &"cd".repeat(32), b"pack").unwrap();
        let synced = SYNCED.with(|s| s.borrow().clone());
        assert!(synced.contains(&root.join("packs")), "{synced:?}");
        assert!(synced.contains(&root.join("packs/cd")), "{synced:?}");
    }

    /// An entry that vanishes between readdir and stat (another process releasing its
    /// lock) is skipped, not a failed listing.
    #[test]
    fn an_entry_vanishing_between_readdir_and_stat_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        fs::write(&p, b"x").unwrap();
        let e = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap();
        assert_eq!(listed_size(&e).unwrap(), Some(1));
        fs::remove_file(&p).unwrap();
        assert_eq!(listed_size(&e).unwrap(), None);
    }

    /// More pieces than one `writev` takes (1024), some empty, some large: the object is
    /// their concatenation, and it exists only once whole.
    #[test]
    fn put_parts_writes_the_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::create(&dir.path().join("repo")).unwrap();
        let parts: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| match i % 7 {
                0 => Vec::new(),
                3 => vec![(i % 251) as u8; 70_000],
                _ => i.to_le_bytes().repeat(usize::try_from(i % 13).unwrap()),
            })
            .collect();
        let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let name = "ab".repeat(32);
        s.put_parts(Kind::Pack, &name, &slices).unwrap();
        assert_eq!(s.get(Kind::Pack, &name).unwrap(), parts.concat());
        let again = s.put_parts(Kind::Pack, &name, &slices).unwrap_err();
        assert_eq!(
            again.kind(),
            ErrorKind::Storage,
            "a pack is never overwritten"
        );
        assert!(
            fs::read_dir(dir.path().join("repo/tmp"))
                .unwrap()
                .next()
                .is_none()
        );
    }
}
