//! The seed corpus, made from real objects: a repository is created and backed up, and its
//! snapshot, key slot, config header, pack trailer and tree stream are written out, with
//! an export's `.tar.gz` and its manifest, the original `.env` and names. Regenerate with
//! `replay --make-seeds` after a format change; the committed files are the corpus.

use masclet_engine::disk::format::ObjectType;
use masclet_engine::{
    BackupOptions, KdfParams, Kind, LocalStorage, LockMode, NoProgress, OpenOptions, Repo,
    RepoConfig, Snapshot, Source, Storage,
};
use std::path::Path;
use std::sync::Arc;

fn put(corpus: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("corpus folder");
    std::fs::write(dir.join(name), bytes).expect("corpus file");
}

/// Write the seeds of every target under `corpus`.
pub fn write(corpus: &Path) {
    let work = tempfile::tempdir().expect("temp dir");
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("source");
    std::fs::write(
        src.join("animals.sql"),
        b"COPY animals (id, nom) FROM stdin;\n1\tBlanca\n\\.\n",
    )
    .expect("source");
    std::fs::write(src.join("sub/empty"), b"").expect("source");
    std::os::unix::fs::symlink("../animals.sql", src.join("sub/link")).expect("source");
    let storage = LocalStorage::create(&work.path().join("repo")).expect("repository");
    let index = storage.index_path();
    masclet_engine::init(
        &storage,
        &index,
        b"seed",
        RepoConfig::new_default(),
        KdfParams::FAST_INSECURE,
    )
    .expect("init");
    let storage = Arc::new(storage);
    let opts = OpenOptions::new("seed", Some(LockMode::Shared));
    let mut repo = Repo::open(storage.clone(), &index, b"seed", &opts).expect("open");
    let id = masclet_engine::backup(
        &mut repo,
        Source::Paths(vec![src]),
        &BackupOptions::default(),
        &NoProgress,
    )
    .expect("backup")
    .snapshot;
    let snap = Snapshot::load(repo.storage(), repo.keys(), id).expect("snapshot");
    put(corpus, "snapshot", "backup", &snap.encode());
    for (name, _) in storage.list(Kind::Key).expect("keys") {
        put(
            corpus,
            "key_slot",
            "slot",
            &storage.get(Kind::Key, &name).expect("key"),
        );
    }
    let config = storage.get(Kind::Config, "config").expect("config");
    put(corpus, "config_header", "config", &config);
    for (name, size) in storage.list(Kind::Pack).expect("packs") {
        let pack = masclet_engine::PackId::from_hex(&name).expect("pack name");
        let entries =
            masclet_engine::disk::pack::read_trailer(repo.storage(), repo.keys(), pack, size)
                .expect("trailer");
        let mut seed = vec![3u8];
        seed.extend(masclet_engine::disk::pack::encode_trailer(&entries));
        put(corpus, "pack_trailer", &name[..16], &seed);
    }
    let mut tree = Vec::new();
    for (chunk, _) in &snap.tree {
        tree.extend(
            repo.load_chunk(chunk, ObjectType::Tree)
                .expect("tree chunk"),
        );
    }
    put(corpus, "tree_stream", "backup", &tree);
    put(
        corpus,
        "env_file",
        "original",
        b"BACKUP_ROOT=\"/backups\"\nRETENTION_DAILY=7\nRETENTION_WEEKLY=4\nRETENTION_MONTHLY=12\nRETENTION_YEARLY=5\nMIN_BACKUP_SIZE=1048576  # 1MB\n",
    );
    put(
        corpus,
        "env_file",
        "operations",
        b"# a comment\nexport LOG_DIR=/logs\nSMTP_PASSWORD='p#ss word'\nSMTP_PORT=587\nEXPORT_MIRROR=yes\nNOTIFY_EMAIL_TO=a@farm.example, b@farm.example\nMIN_FREE_SPACE=5G\n",
    );
    for (i, s) in ["5G", "1048576", "512K", "2GiB", "0", "18446744073709551615"]
        .iter()
        .enumerate()
    {
        put(corpus, "size_arg", &i.to_string(), s.as_bytes());
    }
    put(
        corpus,
        "archive_name",
        "daily",
        b"masclet_daily_20250311_0745_a8f3bc12.tar.gz",
    );
    put(
        corpus,
        "archive_name",
        "yearly",
        b"masclet_yearly_20241231_2359_00000000.tar.gz",
    );
    // A real export: the .tar.gz for the archive targets, its manifest, and its tar alone
    // for the target that gzips its input.
    let out = work.path().join("out");
    std::fs::create_dir_all(out.join("daily")).expect("export folder");
    let done = masclet_engine::archive::export(
        &repo,
        id,
        &snap,
        &out,
        masclet_engine::archive::Tier::Daily,
        &masclet_engine::archive::ExportOptions::with_threads(1),
        &NoProgress,
    )
    .expect("export");
    let gz = std::fs::read(&done.path).expect("export file");
    put(corpus, "archive", "export", &gz);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar)
        .expect("gunzip");
    put(corpus, "archive_gz", "export", &tar);
    let manifest = tar_member(&tar, "MANIFEST.json").expect("MANIFEST.json in the export");
    put(corpus, "archive_manifest", "export", &manifest);
    put(
        corpus,
        "pg_manifest",
        "sample",
        br#"{"version":1,"database":"masclet_imperi","server_version":"15.18","taken_at":"2026-12-03T02:00:00Z","shape":"keyed","dump":"masclet_imperi.sql","tables":[{"schema":"public","name":"animals","rows":3,"max_updated_at":"2026-12-02 10:00:00+00"}],"roles":["masclet_app"],"grants":[]}"#,
    );
}

/// The bytes of member `name` of an uncompressed tar.
fn tar_member(tar: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut a = tar::Archive::new(tar);
    for e in a.entries().ok()? {
        let mut e = e.ok()?;
        if e.path().ok()?.to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).ok()?;
            return Some(v);
        }
    }
    None
}
