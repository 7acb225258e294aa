//! `rampart run`: the process around one [`Daemon`]. It owns what belongs
//! to the process rather than to a daemon, and turns each outside event
//! into the same commands a test sends:
//!
//! - the control socket: each request becomes [`Commands::command`];
//! - SIGHUP: a reload (`Request::Reload`); SIGUSR2: an upgrade to this
//!   binary (`Request::Upgrade`), as `rampart upgrade` asks for;
//!   SIGUSR1: reopen the access log; SIGTERM, SIGINT: stop;
//! - systemd: readiness, reloads, the new main pid after an upgrade, and
//!   the watchdog, which pings the main loop (a stuck loop stops the pings);
//! - the open-files limit and handing freed memory back to the kernel.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;
use log::{error, info};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use super::{Commands, Daemon, Exit, Io, memory, open_files, upgrade};
use crate::{
    config::Config,
    control_socket::{
        self,
        protocol::{Reply, Request},
    },
    systemd,
};

/// Runs the daemon for `config` (read from `source`, if it came from a
/// file) until SIGTERM or SIGINT, or until an upgrade has handed over.
pub async fn run(config: Config, source: Option<PathBuf>) -> Result<()> {
    // The handlers first: a signal's default action ends the process, and
    // from the moment the filter is attached or READY=1 is sent, a SIGHUP
    // (a reload) may come. Tokio keeps a signal that arrives before the
    // loop below reads it.
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    open_files::raise(&config);
    crate::http::budget::give_freed_bodies_back();
    let upgrading = upgrade::is_upgrade();
    if upgrading {
        upgrade::allow_request_migration();
    }
    // First: a second daemon on the same socket stops here, before it
    // binds or loads anything.
    let mut control_socket = control_socket::bind(&config.control.socket, upgrading)?;
    let io = Io::bind(&config, source)?;
    let (workers, socket_path) = (config.http.workers.max(1), config.control.socket.clone());
    let instance = config.instance.clone();
    let mut daemon = Daemon::start(config, io)?;
    systemd::notify("READY=1");
    let (calls_tx, mut calls) = mpsc::channel(16);
    control_socket.take_over()?;
    tokio::spawn(control_socket::serve(control_socket, calls_tx));
    // An upgrade's old daemon now stops accepting and drains.
    upgrade::signal_ready();
    info!(
        "rampart instance `{instance}` running with {workers} worker(s); control socket {}",
        socket_path.display()
    );

    let commands = daemon.commands();
    let mut watchdog =
        tokio::time::interval(systemd::watchdog_interval().unwrap_or(Duration::from_secs(3600)));
    let mut trim = tokio::time::interval(memory::EVERY);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => ask(&commands, Request::Reload),
            _ = usr1.recv() => commands.reopen_log().await,
            _ = usr2.recv() => match upgrade::own_binary() {
                Ok(binary) => ask(&commands, Request::Upgrade { binary }),
                Err(e) => error!("SIGUSR2 upgrade: {e:#}"),
            },
            Some(call) = calls.recv() => {
                let commands = commands.clone();
                tokio::spawn(async move {
                    let _ = call.reply.send(command(&commands, call.request).await);
                });
            }
            _ = watchdog.tick() => if commands.ping().await {
                systemd::notify("WATCHDOG=1");
            },
            _ = trim.tick() => memory::give_back(),
            exit = daemon.exited() => {
                // Only an upgrade ends it without being told.
                systemd::notify("STOPPING=1");
                return exit.map(|_: Exit| ());
            }
        }
    }
    systemd::notify("STOPPING=1");
    daemon.shutdown(None).await.map(drop)
}

/// Sends a request whose reply nobody waits for (a signal's).
fn ask(commands: &Commands, request: Request) {
    let commands = commands.clone();
    tokio::spawn(async move {
        command(&commands, request).await;
    });
}

/// One request, with what systemd is told around it.
async fn command(commands: &Commands, request: Request) -> Reply {
    let reload = request == Request::Reload;
    if reload {
        systemd::reloading();
    }
    let upgrade = matches!(request, Request::Upgrade { .. });
    let reply = commands.command(request).await;
    if reload {
        systemd::notify("READY=1");
    }
    if upgrade && reply.ok {
        systemd::notify(&format!("MAINPID={}", reply.data["pid"]));
    }
    reply
}

/// A parent may have left signals blocked, and the mask is inherited: a
/// blocked SIGTERM would make the daemon unstoppable. Unblock the ones it handles.
pub fn unblock_signals() {
    // SAFETY: building a signal set we own and changing this thread's mask;
    // called before the runtime starts its threads (they inherit it).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}
