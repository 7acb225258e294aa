//! The CLI's side of the control socket.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::protocol::{Reply, Request};

/// How long the CLI waits for the daemon (a reload validates certificates
/// and may take a moment).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the daemon at `socket` and returns its data, or the
/// daemon's error.
pub fn call(socket: &Path, request: &Request) -> Result<serde_json::Value> {
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
            "permission denied on {}: the control socket belongs to root (mode 0600); run the command as root",
            socket.display()
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no rampart daemon is listening on {} (is `rampart run` running? the path is [control] socket in the configuration)",
            socket.display()
        ),
        _ => anyhow::anyhow!("connecting to {}: {e}", socket.display()),
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .with_context(|| format!("reading the daemon's answer on {}", socket.display()))?;
    if answer.is_empty() {
        bail!("the daemon closed the control connection without answering");
    }
    let reply: Reply = serde_json::from_str(&answer).context("the daemon's answer")?;
    if reply.ok {
        Ok(reply.data)
    } else {
        bail!("{}", reply.error.unwrap_or_else(|| "failed".into()))
    }
}
