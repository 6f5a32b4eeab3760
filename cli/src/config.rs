//! The `.env` configuration file on the command line's side: which file, putting its values
//! into the environment beneath the real environment variables, and `masclet config`.
//!
//! Flags win over environment variables, which win over the file, which wins over the
//! defaults. clap already gives flags precedence over the `env =` variables it reads, and
//! the rest of masclet reads the environment too; so a file's value is set in the process
//! environment only where the variable is not already set, and every reader gets the whole
//! order without knowing the file exists.

use crate::args::Cli;
use crate::output::print_json;
use anyhow::Result;
use masclet_engine::ErrorKind;
use masclet_engine::config::{self, ConfigFile, KEYS, Key};
use serde_json::{Map, json};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What [`load`] found, kept for `masclet config`.
struct Loaded {
    file: Option<ConfigFile>,
    /// The known keys the environment set before the file was read.
    from_env: Vec<&'static str>,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();

/// Find the configuration file (`--config FILE`, else `MASCLET_CONFIG`, else `./.env` if
/// there is one), read it, and set each of its keys the environment does not set already.
///
/// Must run before any other thread exists: it changes the process environment.
///
/// # Errors
///
/// The message for a named file that does not exist, or any line the engine's parser
/// refuses.
pub fn load() -> Result<(), String> {
    let from_env: Vec<&'static str> = KEYS
        .iter()
        .filter(|k| std::env::var_os(k.name).is_some())
        .map(|k| k.name)
        .collect();
    let named = flag_value(std::env::args_os().skip(1))
        .or_else(|| std::env::var_os("MASCLET_CONFIG").filter(|v| !v.is_empty()))
        .map(PathBuf::from);
    let file = match named {
        Some(path) => Some(ConfigFile::read(&path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => format!("{e} (named by --config or MASCLET_CONFIG)"),
            _ => e.to_string(),
        })?),
        None => {
            let path = Path::new(".env");
            match ConfigFile::read(path) {
                Ok(f) => Some(f),
                // The working directory's .env is optional; a named file is not.
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                // Someone running masclet from an application's folder may meet that
                // application's .env: say how to step around it.
                Err(e) => {
                    return Err(format!(
                        "{e}\n(masclet reads .env in the working directory; --config FILE \
                         names another file, --config /dev/null none)"
                    ));
                }
            }
        }
    };
    if let Some(f) = &file {
        for entry in &f.entries {
            if !from_env.contains(&entry.key.name) {
                set_env(entry.key.name, &entry.value);
            }
        }
    }
    let _ = LOADED.set(Loaded { file, from_env });
    Ok(())
}

// The workspace forbids unsafe code; this is the one place the CLI needs it.
#[allow(unsafe_code)]
fn set_env(key: &str, value: &str) {
    // SAFETY: called from `load`, which `main` runs first, before the Ctrl-C handler's
    // thread or any worker pool exists; no other thread can be reading the environment.
    unsafe { std::env::set_var(key, value) };
}

/// The value of `--config FILE` or `--config=FILE` among the arguments, read before clap
/// parses them: the file's values must be in the environment when clap looks there.
fn flag_value(args: impl Iterator<Item = OsString>) -> Option<OsString> {
    let mut args = args;
    while let Some(arg) = args.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return args.next();
        }
        if let Some(v) = arg.to_str().and_then(|s| s.strip_prefix("--config=")) {
            return Some(v.into());
        }
    }
    None
}

/// The repository when neither `--repo` nor `MASCLET_REPO` names one: `BACKUP_ROOT/store`.
pub fn default_repo() -> Option<PathBuf> {
    std::env::var_os("BACKUP_ROOT")
        .filter(|v| !v.is_empty())
        .map(|root| PathBuf::from(root).join("store"))
}

/// One key's effective value and where it came from.
fn effective(key: &Key, loaded: Option<&Loaded>) -> (Option<String>, String) {
    let env = loaded.is_some_and(|l| l.from_env.contains(&key.name));
    if env && let Some(v) = std::env::var_os(key.name) {
        return (Some(v.to_string_lossy().into_owned()), "env".into());
    }
    if let Some(e) = loaded
        .and_then(|l| l.file.as_ref())
        .and_then(|f| f.get(key.name))
    {
        return (Some(e.value.clone()), format!("file:{}", e.line));
    }
    let derived = match key.name {
        "MASCLET_REPO" => default_repo().map(|p| p.display().to_string()),
        _ => key.default.map(str::to_string),
    };
    match derived {
        Some(v) => (Some(v), "default".into()),
        None => (None, "unset".into()),
    }
}

/// `masclet config`: every known key, its value (secrets masked) and its source.
pub fn show(cli: &Cli) -> Result<u8> {
    let loaded = LOADED.get();
    let file = loaded.and_then(|l| l.file.as_ref()).map(|f| &f.path);
    let rows: Vec<(&Key, Option<String>, String)> = KEYS
        .iter()
        .map(|k| {
            let (value, source) = effective(k, loaded);
            (k, value.map(|v| config::mask(k, &v)), source)
        })
        .collect();
    if cli.global.json {
        let mut map = Map::new();
        for (k, value, source) in rows {
            map.insert(k.name.into(), json!({ "value": value, "source": source }));
        }
        print_json(&serde_json::Value::Object(map));
        return Ok(0);
    }
    match file {
        Some(p) => println!("configuration file: {}", p.display()),
        None => println!("configuration file: none (no ./.env, no --config or MASCLET_CONFIG)"),
    }
    for (k, value, source) in rows {
        println!(
            "{:<22} {:<9} {}",
            k.name,
            source,
            crate::output::escape(value.as_deref().unwrap_or("-"))
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::flag_value;

    fn args(a: &[&str]) -> Option<String> {
        flag_value(a.iter().map(Into::into)).map(|v| v.into_string().unwrap())
    }

    #[test]
    fn the_config_flag_is_found_before_clap_parses() {
        assert_eq!(
            args(&["--config", "a.env", "snapshots"]),
            Some("a.env".into())
        );
        assert_eq!(args(&["forget", "--config=b.env"]), Some("b.env".into()));
        assert_eq!(args(&["backup", "--", "--config", "x"]), None);
        assert_eq!(args(&["snapshots"]), None);
    }

    #[test]
    fn retention_defaults_match_the_engines_policy() {
        let p = masclet_engine::KeepPolicy::ORIGINAL;
        let d = |k| masclet_engine::config::find(k).unwrap().default.unwrap();
        assert_eq!(d("RETENTION_DAILY"), p.daily.to_string());
        assert_eq!(d("RETENTION_WEEKLY"), p.weekly.to_string());
        assert_eq!(d("RETENTION_MONTHLY"), p.monthly.to_string());
        assert_eq!(d("RETENTION_YEARLY"), p.yearly.to_string());
    }
}
