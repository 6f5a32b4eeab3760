//! Command-line definitions (clap). Help text lives here; `masclet man` and
//! `masclet completions` are generated from these same definitions.

use clap::{ArgGroup, Args, Parser, Subcommand};
use masclet_engine::KeepPolicy;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  export MASCLET_REPO=/backups/masclet MASCLET_PASSWORD_FILE=/etc/masclet/passphrase
  masclet init
  masclet backup --tag daily --stdin-from-command --stdin-name masclet_imperi.sql -- pg_dump masclet_imperi
  masclet snapshots
  masclet check --read-data
  masclet restore latest --target /tmp/restore

Passphrase: from the file named by MASCLET_PASSWORD_FILE (mode 0600, owned by you; one
trailing newline is ignored), else MASCLET_PASSWORD, else an interactive prompt. Never
from the command line.

Settings: flags, then environment variables, then the configuration file (--config FILE,
MASCLET_CONFIG, else ./.env), then defaults; `masclet config` shows the outcome.

Exit codes: 0 success, 1 failure, 2 usage error, 3 wrong passphrase, 4 repository locked,
5 damaged data found, 6 index missing or damaged (run `masclet repair index`),
7 database unreachable, 8 a test restore's checks failed, 9 a pre-check failed (free
space, permissions), 130 interrupted (nothing partial committed), 141 output closed by its
reader. `masclet status` exits 1 when unhealthy.

The nightly job: `masclet run -t daily` (see `masclet run --help` and docs/operations.md).";

/// masclet: deduplicating, encrypted backups for PostgreSQL-backed applications.
#[derive(Debug, Parser)]
#[command(name = "masclet", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Repository directory.
    #[arg(
        long,
        short = 'r',
        env = "MASCLET_REPO",
        global = true,
        value_name = "PATH"
    )]
    pub repo: Option<PathBuf>,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// The configuration file (KEY=value lines, as the original system's .env); default
    /// ./.env when it exists. Flags and environment variables win over it.
    #[arg(long, env = "MASCLET_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Seconds to wait for a conflicting repository lock before giving up.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS")]
    pub lock_wait: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new, empty repository.
    #[command(
        after_help = "Examples:\n  MASCLET_PASSWORD_FILE=/etc/masclet/pw masclet --repo /backups/masclet init\n  masclet init --kdf-memory 256 --kdf-passes 3"
    )]
    Init(InitArgs),
    /// Back up a PostgreSQL database, files, directories or a stream, and print the new
    /// snapshot's id.
    #[command(after_help = "\
With --pg masclet checks the repository's disk (free space, --min-free; write permission),
connects (30 s timeout, 3 attempts), holds one REPEATABLE READ transaction, records every
table's row count and max(updated_at) in it, and dumps in that same snapshot: a test
restore (`masclet verify`) compares the restored database with these figures. pg_dump's
failure commits nothing. Exit codes: 7 database unreachable, 9 a pre-check failed.

A backup whose sources give no content (an empty stream, only empty files, a lone FIFO) is
refused unless --allow-empty, and one smaller than --min-size is refused: nothing is
committed. With --stdin-from-command masclet runs the producer itself and commits only if it
exits 0; a plain --stdin snapshot is tagged `unchecked-producer`, since nobody checked how
its producer ended. Give pg_dump its plain format: the custom format (-Fc) is compressed,
so a changed row changes the bytes after it and little deduplicates. Snapshots hold at
most 1024 paths and 1024 tags of at most 4096 bytes (format-spec.md §9 limits); more is
refused before anything is written.

Examples:
  DATABASE_URL=postgresql://masclet@localhost/masclet_imperi masclet backup --pg -t daily
  PGHOST=/var/run/postgresql PGDATABASE=masclet_imperi masclet backup --pg --json
  masclet backup /var/lib/masclet/uploads --tag daily
  masclet backup --stdin-from-command --stdin-name masclet_imperi.sql --min-size 1M -- pg_dump masclet_imperi
  pg_dump masclet_imperi | masclet backup --stdin --stdin-name masclet_imperi.sql
  masclet backup --time 2025-03-11T07:45:00Z ./dump.sql")]
    Backup(BackupArgs),
    /// List snapshots, oldest first (by recorded time; the last one is `latest`).
    Snapshots,
    /// Restore a snapshot into a directory.
    #[command(after_help = "\
Files already in the target are replaced, each only once its new content is complete and
verified: until then the old file keeps its name, whatever stops the restore. An entry of
another kind than the snapshot's (a file where it has a directory or symlink, a symlink
where it has a file...) stops the restore unless --overwrite is given; a directory is never
replaced. Work in progress is named .masclet-restore-*; a restore that was killed leaves
such entries behind, and the next restore into the same target removes them and says so.

A database snapshot restores into a new database with --to-db (refused if it exists, unless
--force); a restore that fails drops the half-made database. Then `masclet promote`.

Examples:
  masclet restore latest --target /tmp/restore
  masclet restore 1a2b3c4d --target /srv/restore --overwrite
  masclet restore latest --to-db masclet_imperi_restored")]
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output.
    #[command(
        after_help = "Example:\n  masclet dump latest masclet_imperi.dump | pg_restore -d scratch"
    )]
    Dump {
        /// Snapshot id, unique id prefix, or `latest` (the snapshot with the largest recorded
        /// time, not necessarily the last one written).
        snapshot: String,
        /// Path of the file inside the snapshot.
        path: String,
    },
    /// List the entries of a snapshot.
    Ls {
        /// Snapshot id, unique id prefix, or `latest` (the snapshot with the largest recorded
        /// time, not necessarily the last one written).
        snapshot: String,
        /// Show mode, size and time.
        #[arg(long, short = 'l')]
        long: bool,
    },
    /// Verify the repository: structure always, every chunk's content with --read-data.
    #[command(
        after_help = "Exits 5 when damage is found, listing damaged objects and the snapshots they hurt."
    )]
    Check {
        /// Also decrypt and re-hash every chunk of every pack.
        #[arg(long)]
        read_data: bool,
    },
    /// Apply the retention policy: keep the newest snapshot of each recent day, week, month
    /// and year, tag kept snapshots with their tiers, forget the rest.
    #[command(after_help = "\
Each rule keeps the newest snapshot of each of its N most recent calendar buckets (day, ISO
week, month, year, in the local time zone) that hold a snapshot. Kept snapshots carry exactly
the tier tags (daily, weekly, monthly, yearly) of the rules that keep them; other tags stay.
Forgetting deletes snapshot objects; run `masclet gc` (or pass --prune) to reclaim space.

Examples:
  masclet forget --dry-run
  masclet forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 5 --prune
  RETENTION_DAILY=14 masclet forget --keep-tag pre-migration")]
    Forget(ForgetArgs),
    /// Delete data no snapshot references and repack partly used packs.
    #[command(after_help = "\
Refuses, deleting nothing, if any snapshot cannot be read or any chunk it references is
missing. Safe to interrupt: a later gc finishes the work.

Examples:
  masclet gc --dry-run
  masclet gc --repack-threshold 25")]
    Gc(GcArgs),
    /// Repair derived state.
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Check a classic .tar.gz archive as the old test-backup.sh did, each check named.
    #[command(after_help = "\
Checks, in one read of the file: checksum (the SHA-256 of the file against the 8 hex digits
in its name masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz; a renamed file fails it, a link
such as latest.tar.gz is checked by the name of the file it points at), sidecar
(<FILE>.sha256 when there is one), size (--min-size, MIN_BACKUP_SIZE, default 1 MiB), gzip
and tar read to their ends, members (relative names inside the archive; only files,
directories and symlinks pointing inside), manifest (MANIFEST.json's member list and
SHA-256s, when the archive has one; old-system archives have none, which passes with a
note). --restore-test then, unless the archive is damaged or holds refused members,
restores the dump into a temporary database (plain SQL streamed into psql; a custom-format
dump goes through pg_restore and an unlinked temporary file), runs `masclet verify`'s checks when the archive carries a database manifest, else
the original system's row checks, and drops the database whatever happens.

Exits 0 when every check passed, 8 when a check failed, 5 when the archive's bytes are
damaged (gzip, tar, a member against its manifest), 7 when the server cannot be reached.

Examples:
  masclet verify-archive /backups/daily/masclet_daily_20250311_0745_a8f3bc12.tar.gz
  masclet verify-archive /backups/daily/latest.tar.gz
  MIN_BACKUP_SIZE=10M masclet verify-archive --json FILE
  masclet verify-archive --restore-test --pg postgresql://postgres@localhost/postgres FILE")]
    VerifyArchive(VerifyArchiveArgs),
    /// Import the old system's classic archives as snapshots.
    #[command(after_help = "\
Each archive's SHA-256 is checked against its name before anything inside is read; a
mismatch refuses it. Damaged archives and hostile members (absolute names, `..`, symlinks
pointing outside, hard links, devices, FIFOs, duplicate names, absurd sizes) refuse the
archive with every problem named, and nothing is committed. The snapshot's time is the
name's (local time), its tags the tier and archive-sha256:<hex>; an archive already
imported (a snapshot carries its SHA-256) is reported, not imported twice. A directory is
searched in daily/ weekly/ monthly/ yearly/ and itself, oldest first; symlinks such as
latest.tar.gz are passed over and other names reported as skipped.

Members the archive lists out of the tree's order are spooled to an unlinked temporary
file in TMPDIR (--dry-run says how many bytes; exit 9 when TMPDIR lacks the room). Exits
8 when a checksum does not match, 5 for a damaged archive, 1 for a refused one or a folder
without archives (the first failure's code when several archives fail).

Examples:
  masclet import /backups/old
  masclet import --dry-run /backups/old/daily/masclet_daily_20250311_0745_a8f3bc12.tar.gz
  masclet import --json /backups/old/weekly/*.tar.gz")]
    Import(ImportArgs),
    /// Remove locks left by processes that no longer run on this host.
    Unlock {
        /// Remove every lock, including other hosts' (only when you know nothing runs).
        #[arg(long)]
        all: bool,
    },
    /// Test-restore a database snapshot into a temporary database, check it against what
    /// the backup recorded, and drop the database again.
    #[command(after_help = "\
The dump is streamed out of the repository (every chunk authenticated) into psql in one
transaction, into a database masclet_verify_<time>_<pid> on the snapshot's server (--pg,
DATABASE_URL or the PG* variables) or on --verify-url. Then: the original row counts,
every table's rows and max(updated_at) against the manifest, foreign keys without orphans,
indexes valid (and amcheck's bt_index_check where the extension exists), roles present and
grants restored. The temporary database is always dropped, also after a failure or Ctrl-C.
The result is recorded in the repository's index. Exits 8 when a check fails, naming the
newest older snapshot of the same database whose test restore passed.

Examples:
  masclet verify
  masclet verify 1a2b3c4d --json
  VERIFY_DATABASE_URL=postgresql://postgres@scratch-db/postgres masclet verify --with-roles")]
    Verify(VerifyArgs),
    /// Swap a restored database in under the production name; the old one stays for
    /// rollback.
    #[command(after_help = "\
Ends every other session on both databases, renames DB to DB_pre_restore_<YYYYMMDDHHMMSS>,
then NAME to DB (undoing the first rename if the second fails). Prints both names and the
SQL that rolls the swap back. Stop the application first: it is disconnected.

Examples:
  masclet restore latest --to-db masclet_imperi_restored
  masclet promote masclet_imperi_restored --to masclet_imperi")]
    Promote(PromoteArgs),
    /// Database housekeeping.
    #[command(subcommand)]
    Db(DbCommand),
    /// Export a snapshot as a classic `masclet_<tier>_<YYYYMMDD_HHMM>_<sha8>.tar.gz` in
    /// DIR/<tier>/, or (--mirror) make the tier folders match the snapshots' tier tags.
    #[command(after_help = "\
The archive is a plain tar in gzip: the snapshot's files (a database snapshot: its dump,
roles file and pg-manifest.json) in tree order, then MANIFEST.json with the SHA-256 of every
member. The same snapshot always gives the same bytes. Every chunk is authenticated and every
file's hash checked on the way; damage exits 5 and leaves no archive. It is written under a
temporary name, synced, and named only once complete; beside it <name>.sha256 (check it with
`sha256sum -c` in the tier folder), and latest.tar.gz points at the tier's newest export.
An export already there is checked by its hash and left as it is.

--mirror exports every snapshot tagged with a tier (`masclet forget` writes the tags) that
has no export in that tier's folder, then removes masclet's exports of snapshots that no
longer hold the tier. Files it does not recognise as its own are never touched.

Examples:
  masclet export latest --tier daily --dir /backups/classic
  BACKUP_ROOT=/backups/classic masclet export 1a2b3c4d --tier monthly --json
  masclet export --mirror --dry-run
  masclet forget && masclet export --mirror")]
    Export(ExportArgs),
    /// The nightly job: pre-checks, backup, verification, retention, gc when due, the
    /// classic export, metrics, notifications and log lines, for one tier.
    #[command(after_help = "\
Steps, in order, each timed and recorded: precheck (free space against MIN_FREE_SPACE, write
permission, the database's connection), backup (DATABASE_URL, else BACKUP_PATHS; tagged with
the tier), verify (the new snapshot's chunks are read back; a database snapshot is also
test-restored), retention (RETENTION_* per tier), gc (every GC_INTERVAL_DAYS, or when the
disk passes SPACE_ALERT_PERCENT), export (when EXPORT_MIRROR is true: the classic tier
folders under BACKUP_ROOT are mirrored), then the record: a line in the repository's run
history, METRICS_FILE for node_exporter, LOG_DIR/backup.log, and the alerts
(backup_failed, space_low, integrity_failed, rotation_failed) through every configured
channel. A second run while one is going refuses (exit 4).

Exit status: the first failed step's: 0 when none failed; 9 a pre-check (space,
permission), 7 the database, 5 damaged data, 8 a failed test restore, 1 anything else,
including an alert no channel accepted or a history, textfile or log line that could not be
written (a snapshot saved before a later step failed stays); 4 another run is going.

Examples:
  masclet run -t daily
  masclet --config /etc/masclet/masclet.env run -t weekly --json")]
    Run(RunArgs),
    /// Send an alert through every configured channel: command hook, webhook, mail.
    #[command(after_help = "\
Channels: NOTIFY_COMMAND (run with the alert key and message as arguments and the JSON on
standard input), NOTIFY_WEBHOOK_URL (JSON POST, signed with NOTIFY_WEBHOOK_SECRET when set),
SMTP_HOST with NOTIFY_EMAIL_TO. Each is tried NOTIFY_RETRIES times with backoff, and
reported on a line of its own (--json: the deliveries as an array). docs/notifications.md
has the details: the body, the signature, the mail server's TLS rule.

Exit status: 0 every channel delivered; 1 a channel failed; 2 no channel is configured, the
alert key is unknown or a setting is malformed.

Examples:
  masclet notify --test
  masclet notify backup_failed \"pg_dump exited 1\"
  masclet notify space_low disk 93% used --urgent")]
    Notify(NotifyArgs),
    /// Remove old temporary files, compress old logs, remove orphaned exports and packs,
    /// quarantine damaged exports.
    #[command(
        after_help = "Examples:\n  masclet cleanup -a 30\n  masclet cleanup --dry-run --json"
    )]
    Cleanup(CleanupArgs),
    /// Health at a glance: newest snapshot per tier, last run, last verified restore,
    /// repository and disk use, locks, active alerts. Exits 1 when unhealthy.
    #[command(after_help = "\
Unhealthy (exit 1) when the newest daily snapshot is older than 26 h or there is none yet,
the last run failed, the last test restore failed, or the repository's disk is used above
SPACE_ALERT_PERCENT or has less than MIN_FREE_SPACE available. Exit 0 when healthy; errors
keep their usual codes (4 while gc or forget holds the repository exclusively).

Examples:
  masclet status
  masclet status --json | jq .metrics")]
    Status,
    /// Write a self-contained HTML report with charts of the run history.
    #[command(after_help = "\
The page needs no network and no scripts: inline CSS and SVG charts of the repository's
size, the bytes each run added, run durations and test-restore results, and a table of the
last runs. The file is replaced whole, with masclet's private mode (0600): publish a copy.

Example:
  masclet report --html /var/www/masclet.html")]
    Report(ReportArgs),
    /// Print the effective configuration: every known key, its value and where it came
    /// from (env, file:LINE, default or unset). Secrets are masked.
    #[command(after_help = "\
Sources, strongest first: flags, environment variables, the configuration file (--config
FILE, MASCLET_CONFIG, else ./.env when it exists), defaults. The file holds KEY=value lines
as the original system's .env: # comments, optional quotes and `export `, no expansion. An
unknown key, a malformed line or a bad value stops every command with its line (exit 2).
docs/operations.md lists the keys.

Examples:
  masclet config
  masclet --config /etc/masclet/masclet.env config --json
  RETENTION_DAILY=14 masclet config")]
    Config,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  masclet completions bash > /etc/bash_completion.d/masclet")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  masclet man | gzip > /usr/share/man/man1/masclet.1.gz")]
    Man,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    #[arg(required_unless_present = "mirror", conflicts_with = "mirror")]
    pub snapshot: Option<String>,
    /// The tier folder to export into.
    #[arg(long, value_parser = ["daily", "weekly", "monthly", "yearly"], value_name = "TIER",
          required_unless_present = "mirror", conflicts_with = "mirror")]
    pub tier: Option<String>,
    /// The folder holding daily/, weekly/, monthly/ and yearly/.
    #[arg(long, env = "BACKUP_ROOT", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Make the four tier folders match the snapshots' tier tags: export what is missing,
    /// remove masclet's exports of snapshots that no longer hold the tier.
    #[arg(long)]
    pub mirror: bool,
    /// With --mirror: print the plan and change nothing.
    #[arg(long, short = 'n', requires = "mirror")]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// VACUUM ANALYZE, then REINDEX DATABASE (after a promote, or now and then).
    #[command(after_help = "\
--full runs VACUUM FULL ANALYZE: it rewrites every table and holds an exclusive lock on each
while it does, so the application waits. Without it nothing is blocked.

Examples:
  masclet db maintain
  DATABASE_URL=postgresql://postgres@db/masclet_imperi masclet db maintain --full")]
    Maintain(MaintainArgs),
}

/// Where the database server is, and its client programs.
#[derive(Debug, Args)]
pub struct PgConnArgs {
    /// The database: a PostgreSQL URL or key=value string (else DATABASE_URL, else the PG*
    /// variables). Keep passwords out of it: use PGPASSWORD or a pgpass file.
    #[arg(long = "pg", value_name = "URL")]
    pub pg: Option<String>,
    /// Directory of psql (else PATH, else the newest /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Snapshot id, unique id prefix, or `latest`.
    #[arg(default_value = "latest")]
    pub snapshot: String,
    #[command(flatten)]
    pub conn: PgConnArgs,
    /// Restore on this server instead of the snapshot's database's server.
    #[arg(
        long,
        env = "VERIFY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub verify_url: Option<String>,
    /// Apply the snapshot's roles file to the server first (roles are cluster-wide: by
    /// default they are only checked). Roles that exist get the snapshot's attributes and
    /// passwords, except the role masclet logs in as: meant for a scratch server.
    #[arg(long)]
    pub with_roles: bool,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The restored database to put in place.
    pub name: String,
    /// The production database's name.
    #[arg(long, value_name = "DB")]
    pub to: String,
    #[command(flatten)]
    pub conn: PgConnArgs,
}

#[derive(Debug, Args)]
pub struct MaintainArgs {
    /// VACUUM FULL: reclaims space, but locks every table exclusively while it runs.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub conn: PgConnArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArchiveArgs {
    /// The .tar.gz archive.
    pub file: PathBuf,
    /// Archives smaller than this fail the size check (default 1 MiB).
    #[arg(long, env = "MIN_BACKUP_SIZE", value_parser = parse_size, value_name = "BYTES")]
    pub min_size: Option<u64>,
    /// Also restore the dump into a temporary database and check it.
    #[arg(long)]
    pub restore_test: bool,
    /// The server for the test restore: a PostgreSQL URL or key=value string (else
    /// DATABASE_URL, else the PG* variables).
    #[arg(long = "pg", value_name = "URL", requires = "restore_test")]
    pub pg: Option<String>,
    /// Directory of psql and pg_restore (else PATH, else the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR", requires = "restore_test")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Archives, or directories holding daily/ weekly/ monthly/ yearly/.
    #[arg(required = true, value_name = "FILE|DIR")]
    pub paths: Vec<PathBuf>,
    /// Check and plan every archive, say what would be imported, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the SQLite index from the pack files.
    Index,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Memory of the passphrase's Argon2id key derivation, in MiB (8..=4096). Every
    /// command pays it once, in memory and time, when it opens the repository.
    #[arg(long, default_value_t = 19, value_name = "MIB",
          value_parser = clap::value_parser!(u32).range(8..=4096))]
    pub kdf_memory: u32,
    /// Passes of the Argon2id key derivation (1..=64).
    #[arg(long, default_value_t = 2, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub kdf_passes: u32,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("stream").args(["stdin", "stdin_from_command"])))]
pub struct BackupArgs {
    /// Files or directories to back up; with --stdin-from-command, the command and its
    /// arguments (after `--`).
    #[arg(
        required_unless_present_any = ["stdin", "pg"],
        conflicts_with_all = ["stdin", "pg"],
        value_name = "PATH"
    )]
    pub paths: Vec<PathBuf>,
    /// Back up a PostgreSQL database: one consistent snapshot holding the dump (plain SQL
    /// that `psql -f` restores), the roles (`pg_dumpall --globals-only`) and a manifest of
    /// every table's row count and max(updated_at), all read in one transaction snapshot.
    /// Without URL: DATABASE_URL, else the PG* variables and the pgpass file. A password in
    /// a URL on the command line is visible to every user of the machine: prefer
    /// DATABASE_URL in a private file, or PGPASSFILE.
    #[arg(long, num_args = 0..=1, default_missing_value = "", value_name = "URL",
          conflicts_with_all = ["stdin", "stdin_from_command"])]
    pub pg: Option<String>,
    /// Directory of pg_dump, pg_dumpall and psql (default: PATH, else the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR", requires = "pg")]
    pub pg_bin: Option<PathBuf>,
    /// The dump's shape: `keyed` (pg_dump's schema, each table's rows in primary-key
    /// order: an updated row changes one place of the dump, so nights deduplicate better)
    /// or `pg-dump` (pg_dump's own output, rows in storage order).
    #[arg(long, value_parser = ["keyed", "pg-dump"], default_value = "keyed", requires = "pg")]
    pub dump_shape: String,
    /// Refuse to start when the repository's disk has less free space than this (suffixes
    /// K, M, G, T).
    #[arg(long, env = "MIN_FREE_SPACE", value_parser = parse_size, value_name = "BYTES",
          default_value = "5G", requires = "pg")]
    pub min_free: u64,
    /// After the backup, prove it: a test restore into a temporary database on the same
    /// server (or VERIFY_DATABASE_URL), checked against the recorded figures, then dropped
    /// (see `masclet verify`). Exit 8 when a check fails; the snapshot stays.
    #[arg(long, requires = "pg")]
    pub verify: bool,
    /// Read the data to back up from standard input. The snapshot is tagged
    /// `unchecked-producer`: masclet cannot see whether the producer succeeded.
    #[arg(long)]
    pub stdin: bool,
    /// Run the command given after `--` and back up its standard output; nothing is
    /// committed unless it exits 0 (its status and the end of its standard error are in the
    /// error). It does not inherit MASCLET_PASSWORD or MASCLET_PASSWORD_FILE.
    #[arg(long, conflicts_with = "stdin")]
    pub stdin_from_command: bool,
    /// Name of the file that holds the stream in the snapshot.
    #[arg(
        long,
        default_value = "stdin",
        requires = "stream",
        value_name = "NAME"
    )]
    pub stdin_name: String,
    /// Commit the backup even if its sources gave no content (0 bytes).
    #[arg(long)]
    pub allow_empty: bool,
    /// Refuse, committing nothing, a backup with fewer bytes of content than this (suffixes
    /// K, M, G, T are powers of 1024).
    #[arg(long, env = "MIN_BACKUP_SIZE", value_parser = parse_size, value_name = "BYTES")]
    pub min_size: Option<u64>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Record the requested tier (the original `backup.sh -t daily`); `forget` decides which
    /// tiers a snapshot finally carries.
    #[arg(long, short = 't', value_parser = ["daily", "weekly", "monthly", "yearly"], value_name = "TIER")]
    pub tier: Option<String>,
    /// Record this time instead of now (RFC 3339, e.g. 2025-03-11T07:45:00Z).
    #[arg(long, value_name = "RFC3339")]
    pub time: Option<String>,
    /// Read every file. By default a file the previous snapshot of the same paths from this
    /// host records with the same modification time (to the nanosecond), mode and size,
    /// and whose inode change time equals its modification time, is not read again: its
    /// chunks are listed from that snapshot.
    #[arg(long)]
    pub force_read: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Forget exactly these snapshots (id or unique id prefix) instead of applying the
    /// policy; this also removes a snapshot that cannot be read.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots, whatever their dates.
    #[arg(long, default_value_t = KeepPolicy::ORIGINAL.last, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent days.
    #[arg(long, env = "RETENTION_DAILY", default_value_t = KeepPolicy::ORIGINAL.daily, value_name = "N")]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO weeks.
    #[arg(long, env = "RETENTION_WEEKLY", default_value_t = KeepPolicy::ORIGINAL.weekly, value_name = "N")]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months.
    #[arg(
        long,
        env = "RETENTION_MONTHLY",
        default_value_t = KeepPolicy::ORIGINAL.monthly,
        value_name = "N"
    )]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the N most recent years.
    #[arg(long, env = "RETENTION_YEARLY", default_value_t = KeepPolicy::ORIGINAL.yearly, value_name = "N")]
    pub keep_yearly: u32,
    /// Always keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Print the plan (every keep and removal with its reason) and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Run gc afterwards to reclaim the space.
    #[arg(long)]
    pub prune: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be deleted and repacked, and change nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Repack packs whose dead share passes this percentage.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    pub repack_threshold: f64,
    /// Leave packs past the threshold alone while all dead bytes in kept packs stay under
    /// this percentage of the repository after gc (most dead packs are repacked first). 0
    /// repacks every pack past the threshold.
    #[arg(long, default_value_t = 5.0, value_name = "PERCENT")]
    pub max_unused: f64,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or `latest` (the snapshot with the largest recorded
    /// time, not necessarily the last one written).
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(
        long,
        short = 't',
        value_name = "DIR",
        required_unless_present = "to_db",
        conflicts_with = "to_db"
    )]
    pub target: Option<PathBuf>,
    /// Restore a database snapshot into a new database of this name on the server of
    /// DATABASE_URL or the PG* variables, and check it like `verify` (it stays).
    #[arg(long, value_name = "NAME")]
    pub to_db: Option<String>,
    /// With --to-db: drop and recreate the database if it exists.
    #[arg(long, requires = "to_db")]
    pub force: bool,
    /// With --to-db: directory of psql (else PATH, else the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR", requires = "to_db")]
    pub pg_bin: Option<PathBuf>,
    /// With --to-db: apply the snapshot's roles file first (on a new server, where the
    /// roles do not exist yet).
    #[arg(long, requires = "to_db")]
    pub with_roles: bool,
    /// Replace files and symlinks that stand where the snapshot has another kind of entry
    /// (never a directory).
    #[arg(long)]
    pub overwrite: bool,
}

/// The original system's tiers.
pub const TIERS: [&str; 4] = ["daily", "weekly", "monthly", "yearly"];

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The tier: daily, weekly, monthly or yearly.
    #[arg(long, short = 't', value_parser = TIERS)]
    pub tier: String,
    /// Skip the post-backup verification (not recommended).
    #[arg(long)]
    pub no_verify: bool,
    /// Refuse to start when the repository's disk has less free space than this.
    #[arg(long, env = "MIN_FREE_SPACE", value_parser = parse_size, value_name = "BYTES",
          default_value = "5G")]
    pub min_free: u64,
    /// Where pg_dump, pg_dumpall and psql are (default: PATH, then the newest
    /// /usr/lib/postgresql/*/bin).
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).args(["test", "key"])))]
pub struct NotifyArgs {
    /// Send a test message through every configured channel.
    #[arg(long)]
    pub test: bool,
    /// The alert: backup_failed, space_low, integrity_failed, rotation_failed, backup_ok.
    pub key: Option<String>,
    /// What happened (free text; the words are joined with spaces). Flags such as
    /// --urgent may come after it; a detail starting with '-' goes after `--`.
    pub detail: Vec<String>,
    /// Mark the alert as urgent.
    #[arg(long)]
    pub urgent: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Compress logs older than this many days.
    #[arg(long, short = 'a', default_value_t = 30, value_name = "DAYS")]
    pub age: u32,
    /// Say what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The folder of the `masclet_backup_*` temporaries (default: TMPDIR, else /tmp).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(long, value_name = "FILE")]
    pub html: PathBuf,
}

/// A byte count as the configuration file takes it: 1048576, 512K, 10M, 5G.
fn parse_size(s: &str) -> Result<u64, String> {
    masclet_engine::config::parse_size(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("0"), Ok(0));
        assert_eq!(super::parse_size("1K"), Ok(1024));
        assert_eq!(super::parse_size("10M"), Ok(10 << 20));
        assert_eq!(super::parse_size("2GiB"), Ok(2 << 30));
        assert!(super::parse_size("99999999T").is_err());
        assert!(super::parse_size("1X").is_err());
        assert!(super::parse_size("").is_err());
        assert!(super::parse_size("-1").is_err());
    }
}
