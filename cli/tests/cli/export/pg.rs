//! A database snapshot's archive holds a dump that the real psql restores into a fresh
//! database with exactly the counts its MANIFEST.json records.

use super::*;
use masclet_tests::pg::PgCluster;

const DB: &str = "masclet_imperi";

#[test]
fn a_database_archive_restores_with_psql_to_the_recorded_counts() {
    let Some(pg) = PgCluster::start() else { return };
    pg.load_masclet_imperi(DB, 1500, 7);
    let env = Env::new();
    let path = format!(
        "{}:{}",
        pg.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = env
        .cmd(&["backup", "--pg"])
        .env("DATABASE_URL", pg.url(DB))
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = env.path("classic");
    let v = export(&env, "latest", "daily", &root);
    let untar = env.path("untar");
    std::fs::create_dir(&untar).unwrap();
    sh_ok(
        "tar",
        &[
            "-xzf",
            v["path"].as_str().unwrap(),
            "-C",
            untar.to_str().unwrap(),
        ],
        &untar,
    );
    assert_eq!(
        names(&untar),
        [
            "MANIFEST.json",
            "masclet_imperi.sql",
            "pg-globals.sql",
            "pg-manifest.json"
        ]
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(untar.join("MANIFEST.json")).unwrap()).unwrap();
    assert_eq!(manifest["source"], "postgres");
    pg.createdb("fresh");
    let st = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .args(["-d", "fresh", "-f"])
        .arg(untar.join("masclet_imperi.sql"))
        .envs(pg.env("fresh"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let tables = manifest["database"]["tables"].as_array().unwrap();
    assert!(tables.len() >= 3, "{manifest}");
    for t in tables {
        let name = format!(
            "{}.{}",
            t["schema"].as_str().unwrap(),
            t["name"].as_str().unwrap()
        );
        let n: i64 = pg
            .psql("fresh", &format!("SELECT count(*) FROM ONLY {name}"))
            .parse()
            .unwrap();
        assert_eq!(n, t["rows"].as_i64().unwrap(), "{name}");
        assert_eq!(
            n,
            pg.psql(DB, &format!("SELECT count(*) FROM ONLY {name}"))
                .parse::<i64>()
                .unwrap()
        );
    }
}
