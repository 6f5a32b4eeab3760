//! Where the passphrase comes from: a private file, the environment, or the terminal.
//! Never from argv, which every user of the machine can read.

use anyhow::{Context, Result, bail};
use std::os::unix::fs::MetadataExt;
use zeroize::Zeroizing;

/// Read the passphrase; `confirm` asks twice when prompting (for `init`).
pub fn read(confirm: bool) -> Result<Zeroizing<Vec<u8>>> {
    if let Some(path) = std::env::var_os("MASCLET_PASSWORD_FILE") {
        let path = std::path::PathBuf::from(path);
        let meta = std::fs::metadata(&path)
            .with_context(|| format!("reading MASCLET_PASSWORD_FILE {}", path.display()))?;
        let uid = rustix::process::geteuid().as_raw();
        if meta.mode() & 0o077 != 0 {
            bail!(
                "insecure permissions on {}: it must be readable by you alone (chmod 600 {})",
                path.display(),
                path.display()
            );
        }
        if meta.uid() != uid {
            bail!(
                "insecure ownership of {}: it belongs to uid {}, not to you (uid {uid})",
                path.display(),
                meta.uid()
            );
        }
        let mut bytes = Zeroizing::new(
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
        );
        // One trailing newline is what `echo pw > file` leaves; it is not part of the passphrase.
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        if bytes.is_empty() {
            bail!("{} is empty", path.display());
        }
        return Ok(bytes);
    }
    if let Some(pw) = std::env::var_os("MASCLET_PASSWORD") {
        use std::os::unix::ffi::OsStrExt;
        return Ok(Zeroizing::new(pw.as_bytes().to_vec()));
    }
    let pw = Zeroizing::new(
        rpassword::prompt_password("repository passphrase: ")
            .context("no passphrase: set MASCLET_PASSWORD_FILE (a 0600 file) or MASCLET_PASSWORD, or run on a terminal")?,
    );
    if confirm {
        let again = Zeroizing::new(rpassword::prompt_password("repeat passphrase: ")?);
        if *again != *pw {
            bail!("the passphrases differ; nothing was created");
        }
    }
    Ok(Zeroizing::new(pw.as_bytes().to_vec()))
}
