//! Command-line definitions (clap). Help text lives here; `masclet man` and
//! `masclet completions` are generated from these same definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Examples:
  export MASCLET_REPO=/backups/masclet MASCLET_PASSWORD_FILE=/etc/masclet/passphrase
  masclet init
  pg_dump -Fc masclet_imperi | masclet backup --stdin --stdin-name masclet_imperi.dump --tag daily
  masclet snapshots
  masclet check --read-data
  masclet restore latest --target /tmp/restore

Passphrase: from the file named by MASCLET_PASSWORD_FILE (mode 0600, owned by you; one
trailing newline is ignored), else MASCLET_PASSWORD, else an interactive prompt. Never
from the command line.

Exit codes: 0 success, 1 failure, 2 usage error, 3 wrong passphrase, 4 repository locked,
5 damaged data found, 6 index missing or damaged (run `masclet repair index`),
130 interrupted (nothing partial committed).";

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
    /// Back up files, directories or a stream, and print the new snapshot's id.
    #[command(
        after_help = "Examples:\n  masclet backup /var/lib/masclet/uploads --tag daily\n  pg_dump -Fc masclet_imperi | masclet backup --stdin --stdin-name masclet_imperi.dump\n  masclet backup --time 2025-03-11T07:45:00Z ./dump.sql"
    )]
    Backup(BackupArgs),
    /// List snapshots, oldest first.
    Snapshots,
    /// Restore a snapshot into a directory.
    #[command(after_help = "\
Files already in the target are replaced, each only once its new content is complete and
verified: until then the old file keeps its name, whatever stops the restore. An entry of
another kind than the snapshot's (a file where it has a directory or symlink, a symlink
where it has a file...) stops the restore unless --overwrite is given; a directory is never
replaced. Work in progress is named .masclet-restore-*; a restore that was killed leaves
such entries behind, and the next restore into the same target removes them and says so.

Examples:
  masclet restore latest --target /tmp/restore
  masclet restore 1a2b3c4d --target /srv/restore --overwrite")]
    Restore(RestoreArgs),
    /// Write one file of a snapshot to standard output.
    #[command(
        after_help = "Example:\n  masclet dump latest masclet_imperi.dump | pg_restore -d scratch"
    )]
    Dump {
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Path of the file inside the snapshot.
        path: String,
    },
    /// List the entries of a snapshot.
    Ls {
        /// Snapshot id, unique id prefix, or `latest`.
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
    /// Remove locks left by processes that no longer run on this host.
    Unlock {
        /// Remove every lock, including other hosts' (only when you know nothing runs).
        #[arg(long)]
        all: bool,
    },
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
pub struct BackupArgs {
    /// Files or directories to back up.
    #[arg(
        required_unless_present = "stdin",
        conflicts_with = "stdin",
        value_name = "PATH"
    )]
    pub paths: Vec<PathBuf>,
    /// Read the data to back up from standard input.
    #[arg(long)]
    pub stdin: bool,
    /// Name of the file that holds the standard input in the snapshot.
    #[arg(long, default_value = "stdin", requires = "stdin", value_name = "NAME")]
    pub stdin_name: String,
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
    /// Keep the N newest snapshots, whatever their dates.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the N most recent days.
    #[arg(long, env = "RETENTION_DAILY", default_value_t = 7, value_name = "N")]
    pub keep_daily: u32,
    /// Keep the newest snapshot of each of the N most recent ISO weeks.
    #[arg(long, env = "RETENTION_WEEKLY", default_value_t = 4, value_name = "N")]
    pub keep_weekly: u32,
    /// Keep the newest snapshot of each of the N most recent months.
    #[arg(
        long,
        env = "RETENTION_MONTHLY",
        default_value_t = 12,
        value_name = "N"
    )]
    pub keep_monthly: u32,
    /// Keep the newest snapshot of each of the N most recent years.
    #[arg(long, env = "RETENTION_YEARLY", default_value_t = 5, value_name = "N")]
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
    /// Snapshot id, unique id prefix, or `latest`.
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(long, short = 't', value_name = "DIR")]
    pub target: PathBuf,
    /// Replace files and symlinks that stand where the snapshot has another kind of entry
    /// (never a directory).
    #[arg(long)]
    pub overwrite: bool,
}
