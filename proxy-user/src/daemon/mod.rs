//! The daemon's lifecycle, in order: the configuration was validated by the
//! caller; bind the listeners and the control socket; load and attach the
//! XDP filter (adopting pinned state); restore runtime changes; serve; run
//! control requests and signals (SIGHUP reloads, SIGINT/SIGTERM stop) until
//! told to stop; drain in-flight requests within the grace period; keep the
//! filter enforcing (`on_exit = "keep"`) or detach it.

mod autoban;
mod autobans;
mod bind;
mod expiry;
mod inspect;
mod kick;
mod limits;
mod listeners;
mod log_level;
mod memory;
mod open_files;
mod operate;
mod rekey;
mod restore;
mod upgrade;
mod upstreams;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
pub use bind::{BoundStd, bind_all, bind_std};
use listeners::Listeners;
use log::{error, info, warn};
pub use operate::{Daemon, origin_name};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    admin,
    config::{Config, FilterSettings, OnExit},
    control,
    filter::{Filter, mode_name},
    gate::Gate,
    http::{Shared, State},
    runtime::StateFile,
    systemd,
};

/// How often expired bans are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub async fn run(config: Config, source: Option<PathBuf>) -> Result<()> {
    if config.filter.is_none() && config.listeners.is_empty() {
        bail!("the configuration has neither [filter] nor [[listener]]: nothing to run");
    }
    let config = Arc::new(config);
    // The configuration's level from the first line on (RUST_LOG wins if set).
    crate::logging::set_level((!crate::logging::from_env()).then_some(config.log.level));
    open_files::raise(&config);
    crate::http::budget::give_freed_bodies_back();
    let runtime = StateFile::open(&config.control.state_file)?;
    let workers = config.http.workers.max(1);
    let sockets = bind_workers(&config, workers)?;
    let upgrading = upgrade::is_upgrade();
    if upgrading {
        upgrade::allow_request_migration();
    }
    let mut control_socket = control::bind(&config.control.socket, upgrading)?;
    let admin_socket = config
        .admin
        .bind
        .map(|addr| admin::bind(addr).with_context(|| format!("binding the admin listener {addr}")))
        .transpose()?;
    let shared = Shared::new(State::build(config.clone(), None));
    let gate = shared.load().gate.clone();
    gate.configure(config.filter.as_ref());
    // Loaded, not yet attached: its maps get the runtime entries first.
    let filter = kernel_or_userspace(config.filter.as_ref(), &gate);
    // Escalation reports come to the main loop, which owns the kernel maps;
    // later snapshots inherit the connection.
    let (bans_tx, mut auto_bans) = mpsc::channel(crate::escalate::QUEUE);
    let autoban_metrics = shared.load().metrics.autobans.clone();
    shared.load().escalation.connect(bans_tx, autoban_metrics);
    let mut daemon = Daemon::new(source, filter, shared.clone(), runtime);
    // The program's records go to this process's log, at its level.
    daemon.apply_log();
    if let Some(f) = daemon.filter.as_mut() {
        match f.records() {
            Ok(records) => {
                tokio::spawn(crate::filter::forward(records));
            }
            Err(e) => warn!("the XDP program's log records will not be shown: {e}"),
        }
    }
    daemon.restore()?;
    if let Some(f) = daemon.filter.as_ref()
        && let Err(e) = crate::enforcer::copy_into_gate(&f.maps, &daemon.gate)
    {
        warn!("the L7 copy of the kernel's lists and bans is incomplete: {e}");
    }
    daemon.apply_upstream_runtime();
    daemon.apply_limits();
    // Only now, with every ban and list entry in its maps (after a reboot
    // they come from the state file), does the filter see a packet.
    daemon.attach_filter()?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (listeners, threads) = Listeners::start(sockets, &shared, &stop_rx)?;
    daemon.listeners = Some(listeners);
    let metrics = shared.load().metrics.clone();
    if let Some(f) = &daemon.filter {
        metrics.set_xdp(
            f.attached()
                .iter()
                .map(|(i, m)| (i.clone(), m.map_or("adopted", mode_name).to_string()))
                .collect(),
        );
    }
    if let Some(socket) = admin_socket {
        info!(
            "admin listener on {} (/metrics, /healthz, /readyz)",
            socket.local_addr()?
        );
        tokio::spawn(admin::serve(
            socket,
            admin::Admin::new(
                shared.clone(),
                admin::kernel_of(config.filter.as_ref(), daemon.filter.is_some()),
            ),
        ));
    }
    metrics.set_ready();
    systemd::notify("READY=1");
    let (calls_tx, mut calls) = mpsc::channel(16);
    control_socket.take_over()?;
    tokio::spawn(control::serve(control_socket, calls_tx));
    // An upgrade's old daemon now stops accepting and drains.
    upgrade::signal_ready();
    info!(
        "rampart running with {workers} worker(s); control socket {}",
        config.control.socket.display()
    );

    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut handed_over = false;
    let mut watchdog =
        tokio::time::interval(systemd::watchdog_interval().unwrap_or(Duration::from_secs(3600)));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut reports = Vec::with_capacity(autoban::BATCH);
    let mut trim = tokio::time::interval(memory::EVERY);
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                systemd::reloading();
                let _ = daemon.reload();
                systemd::notify("READY=1");
            }
            _ = usr1.recv() => match &shared.load().access_log {
                Some(log) => log.reopen(),
                None => info!("SIGUSR1: no access log file to reopen"),
            },
            _ = watchdog.tick() => systemd::notify("WATCHDOG=1"),
            // Every report waiting, as one batch (see `autoban`).
            1.. = auto_bans.recv_many(&mut reports, autoban::BATCH) => {
                if let Err(e) = daemon.auto_bans(std::mem::take(&mut reports)) {
                    error!("escalation ban: {e:#}");
                }
            },
            Some(call) = calls.recv() => {
                if let control::protocol::Request::Upgrade { binary } = &call.request {
                    let reply = match upgrade::start_successor(binary, daemon.source.as_deref()).await {
                        Ok(pid) => {
                            info!("upgrade: {} (pid {pid}) is serving; draining and exiting", binary.display());
                            systemd::notify(&format!("MAINPID={pid}"));
                            handed_over = true;
                            control::protocol::Reply::ok(serde_json::json!({ "pid": pid }))
                        }
                        Err(e) => {
                            error!("upgrade failed: {e:#}");
                            control::protocol::Reply::error(format!("{e:#}"))
                        }
                    };
                    let _ = call.reply.send(reply);
                    if handed_over {
                        break;
                    }
                    continue;
                }
                let reply = daemon.handle(call.request);
                let _ = call.reply.send(reply);
            }
            _ = usr2.recv() => match upgrade::own_binary() {
                Ok(binary) => match upgrade::start_successor(&binary, daemon.source.as_deref()).await {
                    Ok(pid) => {
                        info!("SIGUSR2: {} (pid {pid}) is serving; draining and exiting", binary.display());
                        systemd::notify(&format!("MAINPID={pid}"));
                        handed_over = true;
                        break;
                    }
                    Err(e) => error!("SIGUSR2 upgrade failed: {e:#}"),
                },
                Err(e) => error!("SIGUSR2 upgrade: {e:#}"),
            },
            _ = trim.tick() => memory::give_back(),
            _ = sweep.tick() => {
                if let Err(e) = daemon.sweep() {
                    error!("sweeping expired entries: {e:#}");
                }
                daemon.autoban_tick();
            }
        }
    }

    systemd::notify("STOPPING=1");
    // Auto-bans since the last sweep: written before anything else can fail.
    daemon.flush(true);
    let grace = daemon.config.http.grace_period;
    info!("stopping: no new connections; in-flight requests get {grace:?}");
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            match t.join() {
                Ok(Err(e)) => error!("worker: {e:#}"),
                Err(_) => error!("a worker panicked"),
                Ok(Ok(())) => {}
            }
        }
    })
    .await?;
    if handed_over {
        // The new daemon runs the filter now (it adopted the pinned link).
        info!("upgrade complete: exiting, the new daemon serves and filters");
        return Ok(());
    }
    if let (Some(f), Some(settings)) = (daemon.filter.take(), daemon.config.filter.as_ref()) {
        match settings.on_exit {
            OnExit::Keep => info!(
                "the XDP filter keeps enforcing (on_exit = \"keep\"); its links and maps stay pinned in {}",
                f.pin_dir().display()
            ),
            OnExit::Detach => {
                f.detach()?;
                info!("XDP detached (on_exit = \"detach\"); the pinned maps stay");
            }
        }
    }
    Ok(())
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

/// Every worker's sockets for every listener (SO_REUSEPORT): the kernel
/// spreads connections over them and no connection moves between threads.
/// Bound before anything else happens, so a bind error stops the start.
fn bind_workers(config: &Config, workers: usize) -> Result<Vec<Vec<BoundStd>>> {
    let first = bind_std(config, None)?;
    let addrs: Vec<SocketAddr> = first
        .iter()
        .map(|b| b.socket.local_addr())
        .collect::<std::io::Result<_>>()?;
    for (b, addr) in first.iter().zip(&addrs) {
        info!(
            "listening on {addr}{}",
            if b.tls.is_some() { " (TLS)" } else { "" }
        );
    }
    let mut sets = vec![first];
    for _ in 1..workers {
        sets.push(bind_std(config, Some(&addrs))?);
    }
    Ok(sets)
}

/// The XDP filter, loaded (pinned maps adopted) but not attached, when it
/// can run; otherwise, said once and clearly, the gate enforces the same
/// lists, bans and connection rate at accept time.
fn kernel_or_userspace(settings: Option<&FilterSettings>, gate: &Gate) -> Option<Filter> {
    let why = match settings {
        Some(s) if !s.interfaces.is_empty() => match Filter::load(s) {
            Ok(f) => return Some(f),
            Err(e) => format!("the XDP filter could not be loaded ({e:#})"),
        },
        Some(_) => "[filter] names no interfaces".to_string(),
        None => "the configuration has no [filter] section".to_string(),
    };
    userspace_instead(&why, gate);
    None
}

fn userspace_instead(why: &str, gate: &Gate) {
    warn!(
        "{why}: the allowlist, blocklist, bans and per-source connection rate are enforced in \
         userspace at accept time instead (no packet rate limit)"
    );
    gate.activate();
}

impl Daemon {
    /// Attaches the loaded filter to its interfaces. If that fails, the
    /// gate takes over, with the runtime entries restored into it.
    fn attach_filter(&mut self) -> Result<()> {
        let (Some(f), Some(settings)) = (self.filter.as_mut(), self.config.filter.as_ref()) else {
            return Ok(());
        };
        let attached = settings
            .interfaces
            .iter()
            .try_for_each(|iface| f.attach(iface, settings.mode).map(drop));
        match attached {
            Ok(()) => {
                let on: Vec<String> = f
                    .attached()
                    .iter()
                    .map(|(i, m)| format!("{i} ({})", m.map_or("adopted", mode_name)))
                    .collect();
                info!(
                    "XDP on [{}], maps pinned in {}",
                    on.join(", "),
                    settings.pin_dir.display()
                );
            }
            Err(e) => {
                self.filter = None;
                let why = format!("the XDP filter could not be attached ({e:#})");
                userspace_instead(&why, &self.gate);
                self.restore_lists()?;
            }
        }
        Ok(())
    }
}
