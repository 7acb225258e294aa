//! systemd integration without a library: `Type=notify` readiness and the
//! watchdog, over the datagram socket named by `$NOTIFY_SOCKET` (a path, or
//! an abstract name starting with `@`). Without that variable every call is
//! a no-op, so the daemon runs the same under any supervisor.

use std::{os::unix::net::UnixDatagram, time::Duration};

/// Sends `state` (e.g. `READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`).
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    // Never block the daemon's main loop on a supervisor that does not read
    // (a full datagram queue would make `send` wait).
    let _ = sock.set_nonblocking(true);
    let path = path.to_string_lossy().into_owned();
    let sent = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        }
        None => sock.send_to(state.as_bytes(), &path),
    };
    match sent {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            log::debug!("sd_notify {state:?}: {path} is not reading; dropped")
        }
        Err(e) => log::warn!("sd_notify {state:?} to {path}: {e}"),
        Ok(_) => {}
    }
}

/// `RELOADING=1` with the monotonic timestamp systemd 253+ expects.
pub fn reloading() {
    let now = crate::filter::monotonic_ns() / 1000;
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
}

/// How often to send `WATCHDOG=1`: half the interval systemd asked for
/// (`$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
