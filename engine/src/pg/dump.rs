//! The dump's two shapes, both plain SQL that `psql -f` restores, both read in the
//! transaction snapshot the backup holds open (so they show exactly the data the manifest
//! counted), both streamed into the backup without a temporary file and never compressed
//! by PostgreSQL (compressed output does not deduplicate).
//!
//! - [`DumpShape::PgDump`]: `pg_dump --snapshot=…` as it is.
//! - [`DumpShape::Keyed`]: pg_dump's pre-data section (schema), then every table's rows
//!   copied in primary-key order through a second connection that adopts the snapshot,
//!   the sequences' values, then pg_dump's post-data section (indexes, constraints,
//!   grants). pg_dump writes rows in heap order, so an updated row that moves changes the
//!   dump in two places; in key order it changes one (docs/benchmarks.md has the figures).

use super::conn::{connect, query_error};
use super::manifest::{DumpShape, quote_ident};
use super::target::Target;
use crate::error::{Error, Result};
use crate::ops::backup::StreamContent;
use crate::ops::backup::producer::Producer;
use postgres::{Client, GenericClient};
use std::io::Write;

/// What the dump needs: where, with which programs, and the exported snapshot to read in.
pub(crate) struct DumpJob {
    pub(crate) target: Target,
    pub(crate) pg_dump: std::path::PathBuf,
    pub(crate) snapshot: String,
    pub(crate) shape: DumpShape,
}

impl DumpJob {
    fn pg_dump(&self, extra: &[&str]) -> Result<std::process::Command> {
        let mut c = std::process::Command::new(&self.pg_dump);
        self.target.apply_to(&mut c)?;
        // -w: never wait for a password prompt nobody will answer.
        c.args(["-w", "--format=plain", "--snapshot", &self.snapshot]);
        c.args(extra);
        Ok(c)
    }

    /// The dump as a stream entry's content: the snapshot commits only if every program
    /// and query that wrote it succeeded.
    pub(crate) fn content(self) -> Result<StreamContent> {
        match self.shape {
            DumpShape::PgDump => {
                let (producer, stdout) = Producer::spawn(self.pg_dump(&[])?)?;
                let target = self.target;
                Ok(StreamContent::Produced {
                    reader: Box::new(stdout),
                    done: Box::new(move || finish(producer, &target)),
                })
            }
            DumpShape::Keyed => {
                let (reader, writer) =
                    std::io::pipe().map_err(|e| Error::io("creating the dump's pipe", e))?;
                let worker = std::thread::Builder::new()
                    .name("masclet-pg-dump".into())
                    .spawn(move || self.write_keyed(writer))
                    .map_err(|e| Error::io("starting the dump's thread", e))?;
                Ok(StreamContent::Produced {
                    reader: Box::new(reader),
                    done: Box::new(move || {
                        worker
                            .join()
                            .map_err(|_| Error::internal("the dump's thread panicked"))?
                    }),
                })
            }
        }
    }

    /// Write the keyed dump into `out`. Dropping `out` at the end (or on an error) is what
    /// ends the stream for the backup.
    fn write_keyed(self, pipe: std::io::PipeWriter) -> Result<()> {
        let io = |e| Error::io("writing the dump into the backup", e);
        // COPY hands over one row per read: unbuffered, that was a system call per row
        // (6.9 M writes for a 587 MB dump, 2.5 times pg_dump's own time).
        let mut out = std::io::BufWriter::with_capacity(1 << 20, pipe);
        self.section("pre-data", &mut out)?;
        let mut client = connect(&self.target)?;
        let mut tx = client
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| query_error(&self.target, "starting the dump's transaction", &e))?;
        tx.batch_execute(&format!(
            "SET TRANSACTION SNAPSHOT '{}'",
            self.snapshot.replace('\'', "''")
        ))
        .map_err(|e| query_error(&self.target, "adopting the backup's snapshot", &e))?;
        for t in dumped_tables(&mut tx, &self.target)? {
            crate::check_interrupt()?;
            let cols = t.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
            let list = cols.join(", ");
            writeln!(out, "--\n-- Data for {} (primary-key order)\n--\n", t.name).map_err(io)?;
            // A table without columns has rows but no column list (as pg_dump writes it).
            let target_cols = if cols.is_empty() {
                String::new()
            } else {
                format!(" ({list})")
            };
            writeln!(out, "COPY {}{target_cols} FROM stdin;", t.name).map_err(io)?;
            let order = if t.key.is_empty() {
                String::new()
            } else {
                let k = t.key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>();
                format!(" ORDER BY {}", k.join(", "))
            };
            let what = format!("copying the rows of {}", t.name);
            let mut rows = tx
                .copy_out(&format!(
                    "COPY (SELECT {list} FROM ONLY {}{order}) TO STDOUT",
                    t.name
                ))
                .map_err(|e| query_error(&self.target, &what, &e))?;
            std::io::copy(&mut rows, &mut out).map_err(|e| {
                // A failed read is the server's; a failed write is the backup's side.
                Error::io(format!("{what} into the backup"), e)
            })?;
            out.write_all(b"\\.\n\n").map_err(io)?;
        }
        for (seq, value, called) in sequences(&mut tx, &self.target)? {
            let lit = seq.replace('\'', "''");
            writeln!(out, "SELECT pg_catalog.setval('{lit}', {value}, {called});").map_err(io)?;
        }
        tx.commit()
            .map_err(|e| query_error(&self.target, "ending the dump's transaction", &e))?;
        self.section("post-data", &mut out)?;
        out.flush().map_err(io)
    }

    /// Copy one of pg_dump's sections into `out`.
    fn section(&self, name: &str, out: &mut impl Write) -> Result<()> {
        let (producer, mut stdout) = Producer::spawn(self.pg_dump(&["--section", name])?)?;
        std::io::copy(&mut stdout, out).map_err(|e| {
            Error::io(
                format!("copying pg_dump's {name} section into the backup"),
                e,
            )
        })?;
        finish(producer, &self.target)
    }
}

/// Wait for a client program and accept its output only if it exited 0; its standard
/// error, in the message, has the password removed.
fn finish(producer: Producer, target: &Target) -> Result<()> {
    producer
        .finish()
        .map(drop)
        .map_err(|e| Error::new(e.kind(), target.redact(e.message())))
}

/// A table whose rows the keyed dump copies.
struct Dumped {
    /// Qualified, quoted name.
    name: String,
    /// Stored columns in order (generated ones are recomputed on restore, as pg_dump does).
    columns: Vec<String>,
    /// Primary-key columns, empty when the table has none (heap order then).
    key: Vec<String>,
}

/// The tables pg_dump would copy the rows of: regular tables and partitions outside the
/// catalogs, ordered by schema and name.
fn dumped_tables(c: &mut impl GenericClient, target: &Target) -> Result<Vec<Dumped>> {
    let mut out = Vec::new();
    for (schema, table) in super::manifest::tables(c, target)? {
        let name = format!("{}.{}", quote_ident(&schema), quote_ident(&table));
        // An extension's own tables are filled by CREATE EXTENSION, which pre-data has.
        let member = c
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_depend WHERE classid = 'pg_class'::regclass \
                 AND objid = $1::text::regclass AND deptype = 'e')",
                &[&name],
            )
            .map_err(|e| query_error(target, &format!("reading what owns {name}"), &e))?;
        if member.get::<_, bool>(0) {
            continue;
        }
        let rows = c
            .query(
                "SELECT a.attname::text, coalesce(a.attnum = ANY (i.indkey), false) \
                 FROM pg_attribute a \
                 LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                 AND a.attgenerated = '' ORDER BY a.attnum",
                &[&name],
            )
            .map_err(|e| query_error(target, &format!("reading the columns of {name}"), &e))?;
        let columns: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let key = primary_key(c, target, &name)?;
        out.push(Dumped { name, columns, key });
    }
    Ok(out)
}

/// The primary key's columns in key order.
fn primary_key(c: &mut impl GenericClient, target: &Target, name: &str) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1::text::regclass AND i.indisprimary ORDER BY k.n",
            &[&name],
        )
        .map_err(|e| query_error(target, &format!("reading the primary key of {name}"), &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every sequence's state: qualified name, last value, whether it was called.
fn sequences(c: &mut impl GenericClient, target: &Target) -> Result<Vec<(String, i64, bool)>> {
    let names = c
        .query(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) \
             FROM pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY 1",
            &[],
        )
        .map_err(|e| query_error(target, "listing the sequences", &e))?;
    let mut out = Vec::new();
    for r in names {
        let name: String = r.get(0);
        let row = c
            .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
            .map_err(|e| query_error(target, &format!("reading sequence {name}"), &e))?;
        out.push((name, row.get(0), row.get(1)));
    }
    Ok(out)
}

/// Whether the database holds large objects, which only pg_dump's own shape carries.
pub(crate) fn has_large_objects(c: &mut Client, target: &Target) -> Result<bool> {
    let row = c
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata)", &[])
        .map_err(|e| query_error(target, "looking for large objects", &e))?;
    Ok(row.get(0))
}
