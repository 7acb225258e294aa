//! The control channel: a Unix socket (mode 0600, owned by the daemon's
//! user, root) on which the CLI asks the daemon to change or show runtime
//! state. Nothing listens on the network for control.
//!
//! Each connection carries one request line and gets one reply line. The
//! socket task only parses and checks the caller; every request is carried
//! out by the daemon's main loop, one at a time, so the kernel maps and the
//! state file have a single writer.

pub mod client;
pub mod protocol;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use protocol::{Reply, Request};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::{mpsc, oneshot},
};

/// A request for the main loop, with where its reply goes.
pub struct Call {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 << 10;
/// Time a client gets to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound control socket; its file is removed when dropped, unless a
/// newer daemon (after an upgrade) has put its own socket at the path.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Inode of our socket file, to recognise it.
    inode: u64,
    /// Where the socket was bound before being moved to `path` (takeover).
    staged: Option<PathBuf>,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
        if let Some(staged) = &self.staged {
            let _ = std::fs::remove_file(staged);
        }
    }
}

impl ControlSocket {
    /// After an upgrade's new daemon is ready: puts its socket at the
    /// configured path, in place of the old daemon's (an atomic rename).
    pub fn take_over(&mut self) -> Result<()> {
        if let Some(staged) = self.staged.take() {
            std::fs::rename(&staged, &self.path)
                .with_context(|| format!("moving the control socket to {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// Binds the control socket at `path`, mode 0600. A socket file left by a
/// daemon that died is replaced; one a live daemon answers on is an error,
/// unless this daemon is that daemon's upgrade (`upgrade`): then it binds
/// beside it, and [`ControlSocket::take_over`] moves it in once ready.
pub fn bind(path: &Path, upgrade: bool) -> Result<ControlSocket> {
    use std::os::unix::fs::MetadataExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the control socket", dir.display()))?;
    }
    let mut at = path.to_path_buf();
    let mut staged = None;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            if !upgrade {
                bail!(
                    "another rampart daemon is answering on {}; stop it first, or give each daemon its own \
                     `instance` name (or [control] socket)",
                    path.display()
                );
            }
            at = path.with_extension(format!("{}.sock", std::process::id()));
            let _ = std::fs::remove_file(&at);
            staged = Some(at.clone());
        } else {
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))?;
        }
    }
    let listener = UnixListener::bind(&at)
        .with_context(|| format!("binding the control socket {}", at.display()))?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))?;
    let inode = std::fs::metadata(&at)?.ino();
    Ok(ControlSocket {
        listener,
        path: path.to_path_buf(),
        inode,
        staged,
    })
}

/// Accepts control connections until the process stops, handing requests
/// to `calls`. Errors are answered to the caller and never stop the loop.
pub async fn serve(socket: ControlSocket, calls: mpsc::Sender<Call>) {
    loop {
        let stream = match socket.listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                log::warn!("control socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, calls).await {
                log::debug!("control connection: {e:#}");
            }
        });
    }
}

async fn answer(stream: UnixStream, calls: mpsc::Sender<Call>) -> Result<()> {
    // SAFETY: geteuid takes nothing and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let allowed = stream
        .peer_cred()
        .map(|c| c.uid() == 0 || c.uid() == euid)
        .unwrap_or(false);
    let (read, mut write) = stream.into_split();
    let reply = if !allowed {
        Reply::error("permission denied: only root may control rampart")
    } else {
        let mut line = String::new();
        let mut reader = BufReader::new(read.take(MAX_REQUEST));
        tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line))
            .await
            .context("no request in time")??;
        match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::error(format!("bad request: {e}")),
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                calls
                    .send(Call { request, reply: tx })
                    .await
                    .map_err(|_| anyhow::anyhow!("the daemon is stopping"))?;
                rx.await
                    .unwrap_or_else(|_| Reply::error("the daemon is stopping"))
            }
        }
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}
