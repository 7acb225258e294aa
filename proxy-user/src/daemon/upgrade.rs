//! Zero-downtime binary upgrades (`rampart upgrade`, or SIGUSR2 as with
//! nginx). The old daemon starts the new binary with the same
//! configuration and waits until it serves; the new one binds its own
//! listening sockets beside the old ones (SO_REUSEPORT), adopts the pinned
//! XDP program and maps, moves its control socket into place, and says it
//! is ready through an inherited pipe. The old daemon then closes its
//! listening sockets: with `net.ipv4.tcp_migrate_req` (set by the new
//! daemon) the kernel moves the connections still waiting in their accept
//! queues to the new sockets, so none is reset. The old daemon finishes its
//! in-flight requests within the grace period, closes its WebSockets with
//! close code 1001 (going away), leaves the filter attached, and exits.
//!
//! Listening sockets are not passed between the processes: SO_REUSEPORT
//! and request migration give the same result (no refused and no reset
//! connection) without handing file descriptors over the control socket.

use std::{
    io::Read,
    os::fd::{FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};

/// Tells the new daemon which descriptor to write its readiness to.
const READY_FD: &str = "RAMPART_UPGRADE_READY_FD";
/// How long the new binary gets to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// In a new daemon: whether it was started by an upgrade.
pub fn is_upgrade() -> bool {
    std::env::var_os(READY_FD).is_some()
}

/// In a new daemon started by an upgrade: lets the kernel migrate the
/// requests queued on the old daemon's sockets when it closes them.
pub fn allow_request_migration() {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", "1") {
        log::warn!(
            "net.ipv4.tcp_migrate_req: {e}; connections queued on the old daemon's sockets may be reset"
        );
    }
}

/// In a new daemon, once it serves: tells the old one.
pub fn signal_ready() {
    let Some(fd) = std::env::var(READY_FD)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the descriptor was opened for us by the old daemon and is
    // used only here, once.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    let _ = std::io::Write::write_all(&mut file, b"1");
}

/// The binary to start for SIGUSR2: this one's path, which after a package
/// upgrade names the new file (the running one shows as "(deleted)").
pub fn own_binary() -> Result<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").context("reading /proc/self/exe")?;
    let text = exe.to_string_lossy();
    Ok(PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(&text).to_string(),
    ))
}

/// In the old daemon: starts `binary run [-c config]` and waits until it
/// serves; returns its pid. On failure nothing changes.
pub async fn start_successor(binary: &Path, config: Option<&Path>) -> Result<u32> {
    if !binary.exists() {
        bail!("{}: no such binary", binary.display());
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // The write end goes to the child: clear close-on-exec on it.
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fds[1], libc::F_SETFD, 0) };
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("run");
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    cmd.env(READY_FD, fds[1].to_string());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    drop(write);
    let pid = child.id();
    let waited = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::from(read);
        let mut byte = [0u8; 1];
        file.read(&mut byte)
    });
    match tokio::time::timeout(START_TIMEOUT, waited).await {
        Ok(Ok(Ok(1))) => Ok(pid),
        Ok(_) => {
            let status = child.wait().ok();
            bail!(
                "the new binary exited before serving ({}); the running daemon stays (see the log for its error)",
                status.map_or("unknown status".into(), |s| s.to_string())
            )
        }
        Err(_) => {
            let _ = child.kill();
            bail!(
                "the new binary was not serving after {START_TIMEOUT:?}; it was stopped and the running daemon stays"
            )
        }
    }
}
