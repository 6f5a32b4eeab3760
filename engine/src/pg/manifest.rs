//! The figures a database snapshot records about the data it dumped, read in the same
//! transaction snapshot the dump uses: every table's row count, `max(updated_at)` where the
//! column exists, the roles, and the grants on tables and sequences. A test restore
//! (`verify`, `restore --to-db`) compares the restored database with them.
//!
//! Stored as the snapshot's file [`MANIFEST_NAME`] (JSON, described in format-spec.md,
//! "Database snapshots").

use super::conn::query_error;
use super::target::Target;
use crate::error::{Error, Result};
use postgres::GenericClient;
use serde::{Deserialize, Serialize};

/// The manifest's entry name in a database snapshot.
pub const MANIFEST_NAME: &str = "pg-manifest.json";
/// The roles file's entry name (`pg_dumpall --globals-only`).
pub const GLOBALS_NAME: &str = "pg-globals.sql";
/// The manifest's format version.
pub const MANIFEST_VERSION: u32 = 1;
/// The snapshot source of a database backup.
pub const PG_SOURCE: &str = "postgres";

/// How the dump is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DumpShape {
    /// pg_dump's plain SQL output, rows in heap order.
    PgDump,
    /// pg_dump's schema around each table's rows copied in primary-key order, so an
    /// updated row changes the dump in one place, not two. Restored with psql like the
    /// other.
    #[default]
    Keyed,
}

impl DumpShape {
    /// The shape's name as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            DumpShape::PgDump => "pg-dump",
            DumpShape::Keyed => "keyed",
        }
    }
}

/// One table's recorded figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFigures {
    /// Schema.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Rows (`count(*)` of the table alone, without inheritance children).
    pub rows: i64,
    /// `max(updated_at)::text` in UTC, when the table has an `updated_at` column (`None`
    /// inside when the table is empty).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub max_updated_at: Option<Option<String>>,
}

/// A key that is present, even as `null`, is `Some`: an empty table with an `updated_at`
/// column (`null`) differs from a table without one (key absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl TableFigures {
    /// `name` for the `public` schema, else `schema.name`.
    pub fn display(&self) -> String {
        if self.schema == "public" {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }

    /// The table as an SQL name.
    pub fn sql_name(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// A privilege granted on a table, view or sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    /// Schema of the object.
    pub schema: String,
    /// The object's name.
    pub object: String,
    /// Role granted to (`PUBLIC` for everyone).
    pub grantee: String,
    /// `SELECT`, `INSERT`, `UPDATE`, `USAGE`...
    pub privilege: String,
}

/// What a database snapshot recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The database dumped.
    pub database: String,
    /// The server's version (`server_version`).
    pub server_version: String,
    /// The transaction's start time on the server (UTC, RFC 3339).
    pub taken_at: String,
    /// The dump's shape.
    pub shape: DumpShape,
    /// The dump's entry name (`<database>.sql`).
    pub dump: String,
    /// The roles file's entry name.
    pub globals: String,
    /// Every table's figures, by schema and name.
    pub tables: Vec<TableFigures>,
    /// Roles other than the built-in `pg_*` ones.
    pub roles: Vec<String>,
    /// Privileges on tables, views and sequences, sorted.
    pub grants: Vec<Grant>,
}

impl Manifest {
    /// Parse a stored manifest.
    ///
    /// # Errors
    /// `Corrupt` when it is not a manifest this version reads.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(format!("{MANIFEST_NAME} is not readable: {e}")))?;
        if m.version != MANIFEST_VERSION {
            return Err(Error::new(
                crate::error::ErrorKind::Unsupported,
                format!(
                    "{MANIFEST_NAME} has version {}, this masclet reads {MANIFEST_VERSION}",
                    m.version
                ),
            ));
        }
        Ok(m)
    }

    /// The manifest as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        v.push(b'\n');
        v
    }
}

/// `"name"` with embedded quotes doubled: any identifier as SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Put the session in UTC, so timestamps read as text compare between the dumped and the
/// restored database whatever the servers' settings.
pub fn utc(c: &mut impl GenericClient, target: &Target) -> Result<()> {
    c.batch_execute("SET TimeZone = 'UTC'")
        .map_err(|e| query_error(target, "setting the session time zone", &e))
}

/// Every user table (regular tables and partitions; not the catalogs), by schema and name.
pub fn tables(c: &mut impl GenericClient, target: &Target) -> Result<Vec<(String, String)>> {
    let rows = c
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
             ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| query_error(target, "listing the tables", &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Count and date every table, and list roles and grants, in `c`'s current transaction.
///
/// # Errors
/// `Database` when a query fails.
pub fn figures(
    c: &mut impl GenericClient,
    target: &Target,
) -> Result<(Vec<TableFigures>, Vec<String>, Vec<Grant>)> {
    let mut out = Vec::new();
    for (schema, name) in tables(c, target)? {
        let mut t = TableFigures {
            schema,
            name,
            rows: 0,
            max_updated_at: None,
        };
        let what = format!("counting the rows of {}", t.display());
        t.rows = c
            .query_one(&format!("SELECT count(*) FROM ONLY {}", t.sql_name()), &[])
            .map_err(|e| query_error(target, &what, &e))?
            .get(0);
        if has_updated_at(c, target, &t)? {
            let what = format!("reading max(updated_at) of {}", t.display());
            let row = c
                .query_one(
                    &format!("SELECT max(updated_at)::text FROM ONLY {}", t.sql_name()),
                    &[],
                )
                .map_err(|e| query_error(target, &what, &e))?;
            t.max_updated_at = Some(row.get(0));
        }
        out.push(t);
    }
    Ok((out, roles(c, target)?, grants(c, target)?))
}

fn has_updated_at(c: &mut impl GenericClient, target: &Target, t: &TableFigures) -> Result<bool> {
    let row = c
        .query_one(
            "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = 'updated_at' \
             AND a.attnum > 0 AND NOT a.attisdropped",
            &[&t.schema, &t.name],
        )
        .map_err(|e| query_error(target, "reading the columns", &e))?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// Roles other than the built-in ones, sorted.
pub fn roles(c: &mut impl GenericClient, target: &Target) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT rolname::text FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1",
            &[],
        )
        .map_err(|e| query_error(target, "listing the roles", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Privileges on tables, views, sequences and foreign tables, sorted; the owner's own
/// implicit privileges are left out (they follow ownership, not a GRANT).
pub fn grants(c: &mut impl GenericClient, target: &Target) -> Result<Vec<Grant>> {
    let rows = c
        .query(
            "SELECT n.nspname::text, c.relname::text, \
             CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END, \
             a.privilege_type::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, \
             LATERAL aclexplode(c.relacl) a \
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
             AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND a.grantee <> c.relowner \
             ORDER BY 1, 2, 3, 4",
            &[],
        )
        .map_err(|e| query_error(target, "listing the grants", &e))?;
    Ok(rows
        .iter()
        .map(|r| Grant {
            schema: r.get(0),
            object: r.get(1),
            grantee: r.get(2),
            privilege: r.get(3),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_embedded_quotes_doubled() {
        assert_eq!(quote_ident("animals"), "\"animals\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn a_manifest_round_trips_and_a_newer_version_is_refused() {
        let m = Manifest {
            version: MANIFEST_VERSION,
            database: "masclet_imperi".into(),
            server_version: "15.10".into(),
            taken_at: "2026-12-03T03:00:00Z".into(),
            shape: DumpShape::Keyed,
            dump: "masclet_imperi.sql".into(),
            globals: GLOBALS_NAME.into(),
            tables: vec![TableFigures {
                schema: "public".into(),
                name: "animals".into(),
                rows: 3,
                max_updated_at: Some(None),
            }],
            roles: vec!["masclet_app".into()],
            grants: vec![],
        };
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        let newer = String::from_utf8(m.to_bytes())
            .unwrap()
            .replace("\"version\": 1", "\"version\": 2");
        assert!(Manifest::parse(newer.as_bytes()).is_err());
        assert!(Manifest::parse(b"{}").is_err());
    }
}
