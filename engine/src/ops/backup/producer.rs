//! A producer the backup runs itself (`backup --stdin-from-command`): its standard output is
//! the stream to store, and the snapshot is committed only once it has exited 0. A `pg_dump`
//! that fails half-way writes a short, valid-looking dump; only its exit status tells.

use crate::error::{Error, ErrorKind, Result};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes of the producer's standard error kept for the message: its last lines say why it
/// failed, and a chatty producer must not grow memory.
const STDERR_TAIL: usize = 4096;

/// A running producer. Dropped before [`Producer::finish`] (the backup failed), it is
/// killed: nothing will read its output any more.
pub(crate) struct Producer {
    child: Child,
    program: String,
    tail: Arc<Mutex<Tail>>,
    stderr_done: std::sync::mpsc::Receiver<()>,
}

#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > 2 * STDERR_TAIL {
            self.bytes.drain(..self.bytes.len() - STDERR_TAIL);
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(STDERR_TAIL);
        let s = String::from_utf8_lossy(&self.bytes[start..]);
        let s = s.trim();
        if self.cut || start > 0 {
            format!("…{s}")
        } else {
            s.to_string()
        }
    }
}

impl Producer {
    /// Start `command` with its output piped to us.
    ///
    /// # Errors
    /// `Io` when it cannot be started (not found, not executable).
    pub(crate) fn spawn(mut command: Command) -> Result<(Self, ChildStdout)> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io(format!("cannot run `{program}`"), e))?;
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let tail = Arc::new(Mutex::new(Tail::default()));
        let (done, stderr_done) = std::sync::mpsc::channel();
        let keep = Arc::clone(&tail);
        std::thread::Builder::new()
            .name("masclet-producer-stderr".into())
            .spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    keep.lock().expect("poisoned").push(&buf[..n]);
                }
                let _ = done.send(());
            })
            .map_err(|e| Error::io("starting the producer's stderr reader", e))?;
        let producer = Self {
            child,
            program,
            tail,
            stderr_done,
        };
        Ok((producer, stdout))
    }

    /// How messages name the stream.
    pub(crate) fn what(&self) -> String {
        format!("the output of `{}`", self.program)
    }

    /// Wait for the producer to exit (Ctrl-C still stops the wait) and accept its output
    /// only if it exited 0. Returns what it wrote on standard error, for a warning.
    ///
    /// # Errors
    /// `Io` naming its exit status or signal and the end of its standard error;
    /// `Interrupted`.
    pub(crate) fn finish(mut self) -> Result<String> {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {
                    crate::check_interrupt()?;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(format!("waiting for `{}`", self.program), e)),
            }
        };
        // A child of the producer may keep its stderr open: wait a little, not for ever.
        let _ = self.stderr_done.recv_timeout(Duration::from_secs(1));
        let stderr = self.tail.lock().expect("poisoned").text();
        if status.success() {
            return Ok(stderr);
        }
        let how = describe(status);
        let said = if stderr.is_empty() {
            "it wrote nothing on standard error".to_string()
        } else {
            format!("its standard error ends: {stderr}")
        };
        Err(Error::new(
            ErrorKind::Io,
            format!(
                "`{}` {how}; its output was not committed as a backup; {said}",
                self.program
            ),
        ))
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        (None, None) => format!("ended abnormally ({status})"),
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Harmless once it has exited and been reaped (finish): kill then fails quietly.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
