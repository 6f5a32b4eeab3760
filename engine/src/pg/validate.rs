//! The checks a test restore runs on the restored database: the original system's
//! post-restore queries, then every figure the manifest recorded compared with the restored
//! data, foreign keys without orphans, valid indexes (and amcheck on B-trees where the
//! extension is available), the roles and the grants.
//!
//! A check that cannot run (a missing table, a failed query) is a failed check with the
//! server's message, not an error: the report must say everything that is wrong at once.

use super::conn::describe;
use super::manifest::{self, Manifest, quote_ident};
use super::target::Target;
use crate::error::Result;
use postgres::Client;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One check of a restored database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked (`rows:animals`, `foreign_key:parts.parts_animal_id_fkey`...).
    pub name: String,
    /// Whether it passed (a skipped check passes; its detail says why it was skipped).
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// A table's rows: recorded in the manifest, found in the restored database (`None` when
/// it could not be counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TableCount {
    /// Rows the manifest recorded.
    pub expected: i64,
    /// Rows found after the restore.
    pub restored: Option<i64>,
}

/// What the checks found.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Every check, in the order run.
    pub checks: Vec<Check>,
    /// Every manifest table's rows, by display name.
    pub tables: BTreeMap<String, TableCount>,
}

/// Run every check on the restored database `client` (connected as `target`) against
/// `manifest`.
///
/// # Errors
/// `Database` only when the session cannot be set up; failed checks are in the result.
pub fn validate(client: &mut Client, target: &Target, manifest: &Manifest) -> Result<Validation> {
    manifest::utc(client, target)?;
    let mut v = Validation::default();
    original_checks(client, manifest, &mut v.checks);
    figures(client, manifest, &mut v);
    foreign_keys(client, &mut v.checks);
    indexes(client, &mut v.checks);
    roles_and_grants(client, target, manifest, &mut v.checks);
    Ok(v)
}

fn one_i64(client: &mut Client, sql: &str) -> std::result::Result<i64, String> {
    client
        .query_one(sql, &[])
        .map(|r| r.get(0))
        .map_err(|e| describe(&e))
}

/// The original system's checks for a dump that came without a manifest (an old
/// `.tar.gz`), as its restore script ran them: `animals` and `parts` can be counted (a
/// table missing fails; an empty one is reported, as the script only printed the count),
/// and `users` holds rows (nobody could log in otherwise).
pub fn original_only(client: &mut Client) -> Vec<Check> {
    let mut out: Vec<Check> = ["animals", "parts"]
        .into_iter()
        .map(|t| {
            let name = format!("original:count({t})");
            match one_i64(client, &format!("SELECT COUNT(*) FROM {}", quote_ident(t))) {
                Ok(n) => Check::new(name, true, format!("{n} rows")),
                Err(e) => Check::new(name, false, e),
            }
        })
        .collect();
    let name = "original:users_not_empty";
    out.push(match one_i64(client, "SELECT COUNT(*) FROM users") {
        Ok(n) if n > 0 => Check::new(name, true, "users has rows"),
        Ok(_) => Check::new(name, false, "users is empty: nobody could log in"),
        Err(e) => Check::new(name, false, e),
    });
    out
}

/// The queries the original restore script ran, when the farm's tables are in the dump.
fn original_checks(client: &mut Client, m: &Manifest, out: &mut Vec<Check>) {
    let has = |t: &str| m.tables.iter().any(|f| f.schema == "public" && f.name == t);
    for t in ["animals", "parts"] {
        if has(t) {
            let name = format!("original:count({t})");
            out.push(
                match one_i64(client, &format!("SELECT COUNT(*) FROM {}", quote_ident(t))) {
                    Ok(n) => Check::new(name, true, format!("{n} rows")),
                    Err(e) => Check::new(name, false, e),
                },
            );
        }
    }
    if has("users") {
        let name = "original:users_not_empty";
        out.push(
            match client.query_one("SELECT COUNT(*) > 0 FROM users", &[]) {
                Ok(r) if r.get::<_, bool>(0) => Check::new(name, true, "users has rows"),
                Ok(_) => Check::new(name, false, "users is empty: nobody could log in"),
                Err(e) => Check::new(name, false, describe(&e)),
            },
        );
    }
}

/// Every table's rows and `max(updated_at)` against the manifest.
fn figures(client: &mut Client, m: &Manifest, v: &mut Validation) {
    for t in &m.tables {
        let got = one_i64(
            client,
            &format!("SELECT count(*) FROM ONLY {}", t.sql_name()),
        );
        let (ok, detail) = match &got {
            Ok(n) if *n == t.rows => (true, format!("{n} rows, as recorded")),
            Ok(n) => (false, format!("{n} rows restored, {} recorded", t.rows)),
            Err(e) => (false, e.clone()),
        };
        v.checks
            .push(Check::new(format!("rows:{}", t.display()), ok, detail));
        v.tables.insert(
            t.display(),
            TableCount {
                expected: t.rows,
                restored: got.ok(),
            },
        );
        let Some(want) = &t.max_updated_at else {
            continue;
        };
        let sql = format!("SELECT max(updated_at)::text FROM ONLY {}", t.sql_name());
        let name = format!("max_updated_at:{}", t.display());
        v.checks.push(match client.query_one(&sql, &[]) {
            Ok(r) => {
                let got: Option<String> = r.get(0);
                let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
                if &got == want {
                    Check::new(name, true, show(&got))
                } else {
                    let d = format!("{} restored, {} recorded", show(&got), show(want));
                    Check::new(name, false, d)
                }
            }
            Err(e) => Check::new(name, false, describe(&e)),
        });
    }
}

/// Every foreign key: validated, and no child row whose non-null key finds no parent (a
/// constraint restored NOT VALID, or data loaded around it, would hide orphans).
fn foreign_keys(client: &mut Client, out: &mut Vec<Check>) {
    let rows = match client.query(
        "SELECT con.conname::text, format('%I.%I', cn.nspname, cc.relname), \
         format('%I.%I', pn.nspname, pc.relname), con.convalidated, \
         ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.conkey) WITH ORDINALITY k(n, i) \
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), \
         ARRAY(SELECT quote_ident(a.attname) FROM unnest(con.confkey) WITH ORDINALITY k(n, i) \
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) \
         FROM pg_constraint con \
         JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace \
         JOIN pg_class pc ON pc.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
         WHERE con.contype = 'f' ORDER BY 2, 1",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::new("foreign_keys", false, describe(&e)));
            return;
        }
    };
    for r in rows {
        let (con, child, parent, validated): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let (ck, pk): (Vec<String>, Vec<String>) = (r.get(4), r.get(5));
        let name = format!("foreign_key:{child}.{con}");
        // MATCH SIMPLE: a key with any NULL column is not checked by the server either.
        let not_null: Vec<String> = ck.iter().map(|c| format!("c.{c} IS NOT NULL")).collect();
        let join: Vec<String> = ck
            .iter()
            .zip(&pk)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect();
        let sql = format!(
            "SELECT count(*) FROM ONLY {child} c WHERE {} AND NOT EXISTS \
             (SELECT 1 FROM ONLY {parent} p WHERE {})",
            not_null.join(" AND "),
            join.join(" AND ")
        );
        out.push(match one_i64(client, &sql) {
            Ok(0) if validated => Check::new(name, true, format!("no orphans ({parent})")),
            Ok(0) => Check::new(name, false, "no orphans, but the constraint is NOT VALID"),
            Ok(n) => Check::new(name, false, format!("{n} rows point to no row of {parent}")),
            Err(e) => Check::new(name, false, e),
        });
    }
}

/// Every index valid; amcheck's `bt_index_check` on every B-tree when the extension can be
/// had (it is left as found: created here only for the check, dropped after).
fn indexes(client: &mut Client, out: &mut Vec<Check>) {
    const USER: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
                        AND n.nspname NOT LIKE 'pg\\_toast%'";
    let invalid = client.query(
        &format!(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT i.indisvalid AND {USER} ORDER BY 1"
        ),
        &[],
    );
    out.push(match invalid {
        Ok(r) if r.is_empty() => Check::new("indexes_valid", true, "every index is valid"),
        Ok(r) => {
            let names: Vec<String> = r.iter().map(|r| r.get(0)).collect();
            Check::new(
                "indexes_valid",
                false,
                format!("invalid: {}", names.join(", ")),
            )
        }
        Err(e) => Check::new("indexes_valid", false, describe(&e)),
    });
    let had = one_i64(
        client,
        "SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'",
    )
    .unwrap_or(0)
        > 0;
    if let Err(e) = client.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck") {
        out.push(Check::new(
            "amcheck",
            true,
            format!("skipped: amcheck is not available ({})", describe(&e)),
        ));
        return;
    }
    let btrees = client.query(
        &format!(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_am am ON am.oid = c.relam \
             WHERE am.amname = 'btree' AND i.indisvalid AND {USER} ORDER BY 2"
        ),
        &[],
    );
    match btrees {
        Ok(rows) => {
            for r in rows {
                let (oid, name): (postgres::types::Oid, String) = (r.get(0), r.get(1));
                let check = format!("amcheck:{name}");
                out.push(
                    match client.execute("SELECT bt_index_check($1::oid::regclass)", &[&oid]) {
                        Ok(_) => Check::new(check, true, "bt_index_check passed"),
                        Err(e) => Check::new(check, false, describe(&e)),
                    },
                );
            }
        }
        Err(e) => out.push(Check::new("amcheck", false, describe(&e))),
    }
    if !had {
        let _ = client.batch_execute("DROP EXTENSION IF EXISTS amcheck");
    }
}

/// Roles are cluster-wide: each recorded one must exist on the server. Grants live in the
/// database: each recorded one must be in the restored database.
fn roles_and_grants(client: &mut Client, target: &Target, m: &Manifest, out: &mut Vec<Check>) {
    match manifest::roles(client, target) {
        Ok(have) => {
            let have: BTreeSet<_> = have.into_iter().collect();
            let missing: Vec<&str> = m
                .roles
                .iter()
                .filter(|r| !have.contains(*r))
                .map(String::as_str)
                .collect();
            out.push(if missing.is_empty() {
                Check::new("roles", true, format!("{} roles present", m.roles.len()))
            } else {
                Check::new(
                    "roles",
                    false,
                    format!(
                        "missing on this server: {} (create them, or rerun with --with-roles to apply the snapshot's roles file)",
                        missing.join(", ")
                    ),
                )
            });
        }
        Err(e) => out.push(Check::new("roles", false, e.message().to_string())),
    }
    match manifest::grants(client, target) {
        Ok(have) => {
            let have: BTreeSet<_> = have.into_iter().collect();
            let missing: Vec<String> = m
                .grants
                .iter()
                .filter(|g| !have.contains(*g))
                .map(|g| {
                    format!(
                        "{} ON {}.{} TO {}",
                        g.privilege, g.schema, g.object, g.grantee
                    )
                })
                .collect();
            out.push(if missing.is_empty() {
                Check::new("grants", true, format!("{} grants present", m.grants.len()))
            } else {
                Check::new("grants", false, format!("missing: {}", missing.join("; ")))
            });
        }
        Err(e) => out.push(Check::new("grants", false, e.message().to_string())),
    }
}
