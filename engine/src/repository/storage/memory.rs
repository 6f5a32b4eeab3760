//! An in-memory [`Storage`], for tests, examples and the fault-injecting wrapper.

use super::{Kind, Storage, check_name};
use crate::error::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Objects in a map; cloneable snapshots of its state serve crash tests.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    objects: RwLock<BTreeMap<(Kind, String), Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every object (the "durable image" of a crash test).
    pub fn dump(&self) -> BTreeMap<(Kind, String), Vec<u8>> {
        self.objects.read().expect("poisoned").clone()
    }

    /// A store holding `objects`.
    pub fn from_dump(objects: BTreeMap<(Kind, String), Vec<u8>>) -> Self {
        Self {
            objects: RwLock::new(objects),
        }
    }

    /// Replace one object's bytes in place (corruption tests).
    pub fn overwrite(&self, kind: Kind, name: &str, data: Vec<u8>) {
        self.objects
            .write()
            .expect("poisoned")
            .insert((kind, name.to_string()), data);
    }
}

impl Storage for MemoryStorage {
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        let mut map = self.objects.write().expect("poisoned");
        let key = (kind, name.to_string());
        if kind != Kind::Lock && map.contains_key(&key) {
            return Err(Error::new(
                ErrorKind::Storage,
                format!("object {kind:?}/{name} already exists"),
            ));
        }
        map.insert(key, data.to_vec());
        Ok(())
    }

    fn replace(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        check_name(kind, name)?;
        self.objects
            .write()
            .expect("poisoned")
            .insert((kind, name.to_string()), data.to_vec());
        Ok(())
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.objects
            .read()
            .expect("poisoned")
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("{kind:?} object {name} not found"),
                )
            })
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let map = self.objects.read().expect("poisoned");
        let obj = map.get(&(kind, name.to_string())).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("{kind:?} object {name} not found"),
            )
        })?;
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= obj.len() as u64)
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "{kind:?} object {name} truncated: {} bytes, read up to {}",
                    obj.len(),
                    offset + len
                ))
            })?;
        Ok(
            obj[usize::try_from(offset).expect("checked")..usize::try_from(end).expect("checked")]
                .to_vec(),
        )
    }

    fn list(&self, kind: Kind) -> Result<Vec<(String, u64)>> {
        let map = self.objects.read().expect("poisoned");
        Ok(map
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, n), v)| (n.clone(), v.len() as u64))
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        self.objects
            .write()
            .expect("poisoned")
            .remove(&(kind, name.to_string()));
        Ok(())
    }
}
