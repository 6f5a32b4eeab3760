//! Streams stored as file entries: one stream (`--stdin`, `--stdin-from-command`) as a
//! snapshot's only entry, or several named streams from one source (a database snapshot's
//! dump, roles file and manifest), each checked before the snapshot may commit.

use super::Writer;
use super::producer::Producer;
use crate::chunking::parent::{self, Parent};
use crate::disk::tree::{EntryMeta, Record, path_cmp};
use crate::error::{Error, Result};
use std::io::Read;

/// Where one stream entry's bytes come from.
pub enum StreamContent {
    /// Bytes already in memory (a manifest).
    Bytes(Vec<u8>),
    /// A program whose standard output is the entry; it must exit 0.
    Command(std::process::Command),
    /// A reader fed by work of the caller's own (a thread writing into a pipe, say), and
    /// the check that this work succeeded, called once the reader is exhausted: the
    /// snapshot commits only if it returns `Ok`.
    Produced {
        /// The bytes.
        reader: Box<dyn Read + Send + 'static>,
        /// Whether they are complete and right.
        done: Box<dyn FnOnce() -> Result<()> + Send + 'static>,
    },
}

/// One named stream of a [`super::Source::Streams`].
pub struct StreamEntry {
    /// The entry's file name (one path component).
    pub name: Vec<u8>,
    /// Its bytes.
    pub content: StreamContent,
}

impl Writer<'_> {
    /// Walk beside the newest snapshot of the same `source` and `paths`, if any.
    fn stream_parent(&mut self, source: &str, paths: &[Vec<u8>]) {
        let parent = parent::find(self.repo, source, paths).map(|s| Parent::new(self.repo, &s));
        self.store.planner().set_parent(parent);
    }

    /// Store one stream as the snapshot's only entry, a file named `name`.
    pub(super) fn stream_entry(
        &mut self,
        name: Vec<u8>,
        reader: impl Read + Send + 'static,
        what: &str,
    ) -> Result<()> {
        self.stream_parent("stdin", std::slice::from_ref(&name));
        self.stream_file(name, reader, what)
    }

    /// Store `entries` (names checked unique by the request) as the snapshot's files, in
    /// the tree's order; a producer that fails fails the backup. Returns how messages name
    /// them.
    pub(super) fn stream_entries(
        &mut self,
        source: &str,
        paths: &[Vec<u8>],
        mut entries: Vec<StreamEntry>,
    ) -> Result<String> {
        self.stream_parent(source, paths);
        entries.sort_by(|a, b| path_cmp(&a.name, &b.name));
        for e in entries {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            match e.content {
                StreamContent::Bytes(b) => {
                    self.stream_file(e.name, std::io::Cursor::new(b), &name)?;
                }
                StreamContent::Command(command) => {
                    let (producer, stdout) = Producer::spawn(command)?;
                    let what = format!("{name} ({})", producer.what());
                    self.stream_file(e.name, stdout, &what)?;
                    let stderr = producer.finish()?;
                    if !stderr.is_empty() {
                        self.progress
                            .warn(&format!("{what}: its standard error said: {stderr}"));
                    }
                }
                StreamContent::Produced { reader, done } => {
                    self.stream_file(e.name, reader, &name)?;
                    done().map_err(|err| err.context(format!("producing {name}")))?;
                }
            }
        }
        Ok(format!("the {source} source"))
    }

    /// Store one stream as a file entry named `name`, beside the parent's file of that
    /// name.
    fn stream_file(
        &mut self,
        name: Vec<u8>,
        reader: impl Read + Send + 'static,
        what: &str,
    ) -> Result<()> {
        let now = chrono::Utc::now();
        if let Some(p) = self.parent() {
            p.start_file(&name);
        }
        let meta = EntryMeta {
            path: name,
            mode: 0o600,
            mtime: now.timestamp(),
            mtime_nsec: now.timestamp_subsec_nanos(),
        };
        self.stats.files += 1;
        self.record(&Record::FileStart(meta))?;
        let (size, content_hash) = self.store_stream(reader, true, &|| what.to_string())?;
        self.content_bytes += size;
        self.record(&Record::FileEnd { size, content_hash })
    }
}

/// Check a list of entry names: single components, no duplicates.
pub(super) fn check_names(entries: &[StreamEntry]) -> Result<()> {
    let mut names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
    for n in &names {
        super::input::check_stream_name(n)?;
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(format!(
            "two streams are both named {:?}",
            String::from_utf8_lossy(w[0])
        )));
    }
    Ok(())
}
