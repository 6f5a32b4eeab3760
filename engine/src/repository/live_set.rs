//! The live set: which chunks some snapshot still needs, as gc holds it in memory.
//!
//! It is the sorted first 8 bytes of each live chunk id. Eight bytes is enough because an
//! error can only go one way: a dead chunk whose id begins like a live one's is kept (its
//! space waits for a later gc), never the reverse, and ids are keyed hashes nobody without
//! the key can aim at a prefix. The bound is 8 bytes per distinct live chunk (8 MiB per
//! million), with at most as much again of repeats between deduplications while marking;
//! the earlier marking table in SQLite cost more time than the whole rest of a typical gc.
//!
//! A plain data type below both its users: gc fills it (gc/live.rs), the index reads it
//! (index/gc.rs).

/// The first 8 bytes of a chunk id, as gc compares them (`to_le_bytes` gives them back).
pub(crate) fn prefix(id: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = id.len().min(8);
    b[..n].copy_from_slice(&id[..n]);
    u64::from_le_bytes(b)
}

/// Sorted, deduplicated id prefixes of live chunks (between [`LiveSet::normalize`] calls,
/// also the ones pushed since, unsorted).
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveSet {
    ids: Vec<u64>,
}

impl LiveSet {
    /// Add a prefix; the set answers queries again only after [`LiveSet::normalize`].
    pub(crate) fn push(&mut self, id: u64) {
        self.ids.push(id);
    }

    /// Add prefixes, and normalize.
    pub(crate) fn extend(&mut self, ids: &[u64]) {
        self.ids.extend_from_slice(ids);
        self.normalize();
    }

    /// Members, counting repeats pushed since the last normalize.
    pub(crate) fn raw_len(&self) -> usize {
        self.ids.len()
    }

    /// Sort and drop repeats.
    pub(crate) fn normalize(&mut self) {
        self.ids.sort_unstable();
        self.ids.dedup();
    }

    /// Whether chunk `id` (given by its prefix) is live.
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// Position of `id` in the set, for per-member flags.
    pub(crate) fn position(&self, id: u64) -> Option<usize> {
        self.ids.binary_search(&id).ok()
    }

    /// Distinct live chunks.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The member at `pos` (for naming missing chunks).
    pub(crate) fn get(&self, pos: usize) -> u64 {
        self.ids[pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_of_prefixes() {
        let a = [0u8, 0, 0, 0, 0, 0, 0, 1, 0xff];
        let b = [0u8, 0, 0, 0, 0, 0, 0, 2, 0x00];
        assert_eq!(prefix(&a).to_le_bytes(), a[..8]);
        assert_eq!(prefix(&a), prefix(&[0, 0, 0, 0, 0, 0, 0, 1, 0x00]));
        let mut s = LiveSet::default();
        for id in [prefix(&b), prefix(&a), prefix(&b)] {
            s.push(id);
        }
        s.normalize();
        assert_eq!(s.len(), 2);
        assert!(s.contains(prefix(&a)) && s.contains(prefix(&b)));
        assert!(!s.contains(prefix(&[9; 8])));
        assert!(s.position(prefix(&b)).is_some());
    }
}
