//! The PostgreSQL fixture itself: a broken fixture would make every database test pass or
//! fail for the wrong reason. It must start a real server, demand passwords over TCP, and
//! load the farm schema with its rows, grants and non-ASCII names intact.

use masclet_tests::pg::{APP_PASSWORD, APP_ROLE, PgCluster, RO_PASSWORD, RO_ROLE};

#[test]
fn cluster_starts_on_loopback_and_answers_psql() {
    let Some(pg) = PgCluster::start() else { return };
    assert_eq!(pg.host(), "127.0.0.1");
    assert_eq!(pg.psql("postgres", "SELECT 1"), "1");
    let version = pg.psql("postgres", "SHOW server_version_num");
    assert!(version.parse::<u32>().unwrap() >= 150000, "{version}");
    assert_eq!(pg.psql("postgres", "SHOW listen_addresses"), "127.0.0.1");
    assert_eq!(pg.psql("postgres", "SHOW port"), pg.port().to_string());
    assert_eq!(pg.psql("postgres", "SHOW fsync"), "off");
    assert_eq!(pg.psql("postgres", "SHOW server_encoding"), "UTF8");
    assert_eq!(
        pg.url("farm"),
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/farm",
            pg.password(),
            pg.port()
        )
    );
    assert!(pg.bin_dir().join("pg_dump").is_file());
}

#[test]
fn loaded_farm_has_the_requested_rows() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi("farm", 1000, 7);
    assert_eq!(pg.psql("farm", "SELECT count(*) FROM animals"), "1000");
    assert_eq!(pg.psql("farm", "SELECT count(*) FROM parts"), "1000");
    assert_eq!(pg.psql("farm", "SELECT count(*) FROM users"), "8");
    let orphans = "SELECT count(*) FROM animals a WHERE pare_id IS NOT NULL \
                   AND NOT EXISTS (SELECT 1 FROM animals p WHERE p.id = a.pare_id)";
    assert_eq!(pg.psql("farm", orphans), "0");
    let parented = pg.psql(
        "farm",
        "SELECT count(*) FROM animals WHERE mare_id IS NOT NULL",
    );
    assert!(parented.parse::<u32>().unwrap() > 300, "{parented}");
    let indexes = "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
                   WHERE indexname IN ('animals_explotacio_idx', 'parts_animal_id_idx')";
    assert_eq!(
        pg.psql("farm", indexes),
        "animals_explotacio_idx,parts_animal_id_idx"
    );
}

#[test]
fn same_seed_loads_same_rows_and_a_night_changes_a_few() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi("a", 2000, 42);
    pg.load_masclet_imperi("b", 2000, 42);
    pg.load_masclet_imperi("c", 2000, 43);
    let fingerprint = "SELECT md5(string_agg(a::text, '|' ORDER BY a.id)) FROM animals a";
    let parts = "SELECT md5(string_agg(p::text, '|' ORDER BY p.id)) FROM parts p";
    assert_eq!(pg.psql("a", fingerprint), pg.psql("b", fingerprint));
    assert_eq!(pg.psql("a", parts), pg.psql("b", parts));
    assert_ne!(pg.psql("a", fingerprint), pg.psql("c", fingerprint));

    pg.night("a", 1);
    let changed = "SELECT count(*) FROM animals WHERE updated_at >= '2025-01-01'";
    let changed: u32 = pg.psql("a", changed).parse().unwrap();
    assert!((5..=60).contains(&changed), "{changed} animals changed");
    let parts_changed = "SELECT count(*) FROM parts WHERE updated_at >= '2025-01-01'";
    let parts_changed: u32 = pg.psql("a", parts_changed).parse().unwrap();
    assert!(
        (10..=80).contains(&parts_changed),
        "{parts_changed} parts changed"
    );
    assert_eq!(pg.psql("a", "SELECT count(*) FROM animals"), "1999");
    // A second night picks other rows, and the same night on equal data does the same.
    pg.night("b", 1);
    assert_eq!(pg.psql("a", fingerprint), pg.psql("b", fingerprint));
    assert_eq!(pg.psql("a", parts), pg.psql("b", parts));
    pg.night("a", 2);
    assert_ne!(pg.psql("a", fingerprint), pg.psql("b", fingerprint));
}

#[test]
fn tcp_connections_require_the_right_password() {
    let Some(pg) = PgCluster::start() else { return };
    let ok = pg.try_psql_as("postgres", pg.password(), "postgres", "SELECT current_user");
    assert_eq!(ok.as_deref(), Ok("postgres"));
    let wrong = pg.try_psql_as("postgres", "not-the-password", "postgres", "SELECT 1");
    let err = wrong.expect_err("a wrong password must be refused");
    assert!(err.contains("password authentication failed"), "{err}");
    let method = "SELECT auth_method FROM pg_hba_file_rules \
                  WHERE type = 'host' AND 'all' = ANY(database) ORDER BY line_number";
    assert_eq!(pg.psql("postgres", method), "scram-sha-256\nscram-sha-256");
    // The stored verifier is SCRAM, not md5.
    let stored = "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'postgres'";
    assert_eq!(pg.psql("postgres", stored), "SCRAM-SHA-256$");
}

#[test]
fn app_role_can_write_and_read_only_role_cannot() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi("farm", 100, 1);
    let grants = "SELECT string_agg(table_name || ':' || privilege_type, ',' \
                  ORDER BY table_name, privilege_type) \
                  FROM information_schema.role_table_grants WHERE grantee = 'masclet_app'";
    assert_eq!(
        pg.psql("farm", grants),
        "animals:INSERT,animals:SELECT,animals:UPDATE,parts:INSERT,parts:SELECT,parts:UPDATE,\
         users:INSERT,users:SELECT,users:UPDATE"
    );
    let seqs = "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a \
                WHERE c.relkind = 'S' AND a.grantee = 'masclet_app'::regrole \
                AND a.privilege_type = 'USAGE'";
    assert_eq!(pg.psql("farm", seqs), "3");

    let insert = "INSERT INTO parts (animal_id, data, estat, updated_at) \
                  VALUES (1, '2025-03-01', 'viu', now()) RETURNING id";
    let id = pg
        .try_psql_as(APP_ROLE, APP_PASSWORD, "farm", insert)
        .unwrap();
    assert_eq!(id, "101", "the sequence continues after the loaded ids");
    let delete = pg.try_psql_as(APP_ROLE, APP_PASSWORD, "farm", "DELETE FROM parts");
    assert!(delete.unwrap_err().contains("permission denied"));

    let count = pg.try_psql_as(RO_ROLE, RO_PASSWORD, "farm", "SELECT count(*) FROM parts");
    assert_eq!(count.as_deref(), Ok("101"));
    let update = "UPDATE animals SET estat = 'venut'";
    let denied = pg.try_psql_as(RO_ROLE, RO_PASSWORD, "farm", update);
    assert!(denied.unwrap_err().contains("permission denied"));
}

#[test]
fn non_ascii_names_round_trip() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi("farm", 1000, 3);
    let names = pg.psql("farm", "SELECT DISTINCT nom FROM animals");
    for name in [
        "Margarida",
        "Ñandú",
        "Blanqueta",
        "Roser·la",
        "Àngela",
        "Mòra",
    ] {
        assert!(
            names.lines().any(|n| n == name),
            "{name} missing from {names}"
        );
    }
    // The bytes stored are the UTF-8 of the names, not a re-encoding.
    let bytes = pg.psql(
        "farm",
        "SELECT DISTINCT encode(convert_to(nom, 'UTF8'), 'hex') \
                                 FROM animals WHERE nom LIKE '%and%'",
    );
    assert_eq!(bytes, hex("Ñandú"));
    let accents = "SELECT count(*) FROM parts WHERE observacions LIKE '%cesària%'";
    assert!(pg.psql("farm", accents).parse::<u32>().unwrap() > 0);
    assert_eq!(
        pg.psql("farm", "SELECT 'Roser·la ñ ç € 🐄'"),
        "Roser·la ñ ç € 🐄"
    );
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
