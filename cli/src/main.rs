//! The `masclet` command line: parses arguments, calls one engine function per command,
//! renders the result, and maps errors to documented exit codes. No backup logic lives here.

mod args;
// `masclet export`: classic archives out of the repository.
mod archive_out;
mod backup;
mod commands;
// The .env configuration file and `masclet config`.
mod config;
mod maintenance;
mod output;
mod password;
// Classic archives coming in: verify-archive and import.
mod archive_in;
mod pg;
mod progress;
// The operated system: `run`, `notify`, `cleanup`, `status`, `report`.
mod cleanup;
mod job;
mod notify;
mod status;

use clap::Parser;
use masclet_engine::ErrorKind;
use std::process::ExitCode;

/// Exit codes (documented in `masclet --help` and the README).
pub mod exit {
    /// A command failed (I/O, storage, bad input, not found).
    pub const FAILURE: u8 = 1;
    /// The command line was invalid.
    pub const USAGE: u8 = 2;
    /// Wrong passphrase, or no key slot could be opened.
    pub const WRONG_PASSWORD: u8 = 3;
    /// Another process holds the repository lock.
    pub const LOCKED: u8 = 4;
    /// Damaged data was found (`check` problems, or a command met corrupt data).
    pub const DAMAGED: u8 = 5;
    /// The index is missing or damaged: run `masclet repair index`.
    pub const INDEX: u8 = 6;
    /// The database server could not be reached or failed a query.
    pub const DATABASE: u8 = 7;
    /// A test restore's checks failed (`verify`, `restore --to-db`).
    pub const VERIFY_FAILED: u8 = 8;
    /// A pre-backup check failed: free space or write permission on the repository.
    pub const PRECHECK: u8 = 9;
    /// Interrupted by Ctrl-C (nothing partial was committed).
    pub const INTERRUPTED: u8 = 130;
}

pub(crate) fn code_for(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::WrongPassword => exit::WRONG_PASSWORD,
        ErrorKind::Locked => exit::LOCKED,
        ErrorKind::Corrupt => exit::DAMAGED,
        ErrorKind::IndexUnavailable => exit::INDEX,
        ErrorKind::Interrupted => exit::INTERRUPTED,
        ErrorKind::Database => exit::DATABASE,
        ErrorKind::VerifyFailed => exit::VERIFY_FAILED,
        ErrorKind::Precheck => exit::PRECHECK,
        _ => exit::FAILURE,
    }
}

/// `println!` panics when standard output is a pipe whose reader went away (`masclet ls -l |
/// head`). Commands print after their work is done, so nothing is left half-made; end as a
/// process killed by SIGPIPE would (status 141), quietly, rather than with a panic message
/// and status 101. Not 0: the command's own status is unknown here, and a failure must not
/// pass for success. (`run` and `status` write their reports best effort and keep theirs.)
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    // First of all, while this is the only thread: it sets environment variables.
    if let Err(e) = config::load() {
        eprintln!("masclet: error: {e}");
        return ExitCode::from(exit::USAGE);
    }
    // Everything masclet writes (repository, index, exports, temp files) is private.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    quiet_broken_pipe();
    let cli = args::Cli::parse();
    let _ = ctrlc::set_handler(|| {
        if masclet_engine::interrupted() {
            // A second Ctrl-C: the operator insists. Nothing committed is at risk.
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
        masclet_engine::interrupt();
    });
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if let Some(e) = err.downcast_ref::<masclet_engine::Error>() {
                // A reader that went away (`masclet ls | head`) is not a failure.
                if e.kind() == ErrorKind::Io && e.io_kind() == Some(std::io::ErrorKind::BrokenPipe)
                {
                    return ExitCode::SUCCESS;
                }
                eprintln!("masclet: error: {e}");
                return ExitCode::from(code_for(e.kind()));
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("masclet: error: {err:#}");
            ExitCode::from(exit::FAILURE)
        }
    }
}
