//! The daemon as a value. [`Daemon::start`] takes a validated
//! configuration and its sockets ([`Io`]), and in this order: loads the
//! XDP filter (adopting pinned state) or turns on the userspace gate;
//! restores the runtime changes of the state file; attaches the filter;
//! starts the workers and the admin listener. It returns a [`Handle`] once
//! everything serves. Its main loop then carries out commands one at a
//! time (control requests, reloads, escalation's bans, the sweep of
//! expired bans) until told to stop; then it drains in-flight requests
//! within the grace period and keeps the filter enforcing (`on_exit =
//! "keep"`) or detaches it.
//!
//! ```text
//! control socket ─┐
//! signals ────────┼─> Commands ─> main loop ─> kernel maps | gate, snapshot, state file
//! tests ──────────┘        escalation reports ─┘
//! ```
//!
//! [`run`] is `rampart run`: the process around one daemon (signals,
//! systemd, the control socket, binary upgrades), feeding it commands.

mod autobans;
mod bind;
mod desired;
mod escalate;
mod expiry;
mod fleet;
mod handle;
mod io;
mod ip;
mod kick;
mod limit;
mod listeners;
mod log_level;
mod memory;
mod open_files;
mod operate;
mod process;
mod reconcile;
mod rekey;
mod reload;
mod restore;
mod upgrade;
mod upstream;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
pub use bind::{BoundStd, bind_all, bind_std};
pub use handle::{Commands, Exit, Handle};
pub use io::{Io, Tier};
use log::{debug, error, info, warn};
pub use process::{run, unblock_signals};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
};

use self::handle::Command;
use crate::{
    admin,
    config::{Config, FilterSettings, OnExit},
    control_socket::protocol::{Reply, Request},
    escalate::AutoBan,
    filter::{Filter, mode_name},
    gate::Gate,
    http::Services,
    http::{SharedState, State},
    state_file::StateFile,
};

/// How often expired bans are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The daemon's mutable state, owned by its main loop.
pub struct Daemon {
    /// The file a reload re-reads; `None` for the built-in configuration.
    source: Option<PathBuf>,
    config: Arc<Config>,
    /// The one writer of the kernel maps, the gate, the switches, and the
    /// zones' and servers' runtime state.
    reconciler: reconcile::Reconciler,
    shared: SharedState,
    runtime: StateFile,
    /// The workers' listeners, changed by reloads.
    listeners: listeners::Listeners,
    /// Every ban in the enforcer and when it expires, for the sweep.
    bans: expiry::BanIndex,
    /// Escalation's bans in force, soonest-expiring first, within
    /// `[filter.maps] autobans`.
    autobans: autobans::AutoBans,
    /// The log level set with `rampart log level`, until `reset` or a restart.
    log_override: Option<crate::logging::Level>,
    /// The fleet this host shares entries with (`[fleet]`), once started.
    fleet: Option<crate::fleet::Fleet>,
}

/// What the main loop stops at the end.
struct Serving {
    /// Tells the workers to stop, with the grace period they get.
    stop: watch::Sender<Option<Duration>>,
    workers: Vec<listeners::Worker>,
    admin: Option<JoinHandle<()>>,
    /// Hands the XDP program's log records to the log.
    records: Option<JoinHandle<()>>,
}

impl Daemon {
    /// Starts a daemon serving `config` with `io`; returns once every
    /// listener serves. Must be called inside a Tokio runtime, which runs
    /// the main loop (the workers have their own threads).
    pub fn start(config: Config, io: Io) -> Result<Handle> {
        if config.filter.is_none() && config.listeners.is_empty() {
            bail!("the configuration has neither [filter] nor [[listener]]: nothing to run");
        }
        // The configuration's level from the first line on (RUST_LOG wins if set).
        crate::logging::set_level((!crate::logging::from_env()).then_some(config.log.level));
        let config = Arc::new(config);
        let runtime = StateFile::open(&config.control.state_file)?;
        // Escalation reports come to the main loop, which owns the kernel maps.
        let (reports, auto_bans) = mpsc::channel(crate::escalate::QUEUE);
        let services = Arc::new(Services::new(reports));
        // `rampart maintenance on` outlives a restart (the state file).
        if runtime.state.maintenance {
            warn!(
                "maintenance is on (from the state file): every request gets 503 until `rampart maintenance off`"
            );
            services.maintenance.set(true);
        }
        let shared = SharedState::new(State::build(config.clone(), services.clone(), None));
        let state = shared.load();
        // Loaded, not yet attached, nothing written: the reconciler writes
        // the configuration with the runtime's limits over it, once.
        let filter = match io.tier {
            Tier::Kernel => kernel_or_userspace(config.filter.as_ref(), &services.gate),
            Tier::Userspace => {
                let why = "the daemon was started with the userspace tier";
                userspace_instead(why, &services.gate);
                None
            }
            Tier::Unattached => {
                let Some(settings) = config.filter.as_ref() else {
                    bail!("the unattached kernel tier needs a [filter] section");
                };
                Some(Filter::open(settings).context("loading the XDP filter")?)
            }
        };
        let sockets = io.listeners;
        let listeners = listeners::Listeners::of(&sockets)?;
        let metrics = services.metrics.clone();
        let mut daemon = Daemon {
            source: io.config_file,
            config: config.clone(),
            reconciler: reconcile::Reconciler::new(
                filter,
                services.gate.clone(),
                services.switches.clone(),
            ),
            shared: shared.clone(),
            runtime,
            listeners,
            bans: Default::default(),
            autobans: autobans::AutoBans::new(metrics.autobans.clone()),
            log_override: None,
            fleet: None,
        };
        // The program's records go to this process's log, at its level.
        daemon.apply_log();
        let records = daemon.forward_records();
        // Nobody sees the snapshot yet: it gets the runtime state first.
        daemon.reconcile_into(config.clone(), &state)?;
        // Bans pinned under another ipv6_prefix keyed again, the state
        // file's entries back, escalation's bans counted.
        daemon.restore()?;
        // The gate keeps a copy of what the kernel enforces, for clients a
        // trusted proxy names (checked at L7): entries adopted with the pins too.
        if let Some(f) = daemon.reconciler.filter()
            && let Err(e) = crate::enforcer::copy_into_gate(&f.maps, &services.gate)
        {
            warn!("the L7 copy of the kernel's lists and bans is incomplete: {e}");
        }
        // Only now, with every ban and list entry in its maps (after a
        // reboot they come from the state file), does the filter see a packet.
        if io.tier != Tier::Unattached {
            daemon.attach_filter()?;
        }
        // Other hosts' entries arrive from here on (Redis reachable or not).
        let fleet_in = daemon.start_fleet();
        // Installed: health checks and the access log's writer start.
        state.start(None);
        let (stop, stopped) = watch::channel(None);
        let (workers, loops) = daemon.listeners.serve(sockets, &shared, &stopped)?;
        if let Some(f) = daemon.reconciler.filter() {
            metrics.set_xdp(
                f.attached()
                    .iter()
                    .map(|(i, m)| (i.clone(), m.map_or("adopted", mode_name).to_string()))
                    .collect(),
            );
        }
        let mut admin_addr = None;
        let admin = match io.admin {
            None => None,
            Some(socket) => {
                let addr = socket.local_addr()?;
                info!("admin listener on {addr} (/metrics, /healthz, /readyz)");
                admin_addr = Some(addr);
                let kernel =
                    admin::kernel_of(config.filter.as_ref(), daemon.reconciler.filter().is_some());
                Some(tokio::spawn(admin::serve(
                    socket,
                    admin::Admin::new(shared.clone(), kernel),
                )))
            }
        };
        metrics.set_ready();
        let addrs = daemon.listeners.addrs();
        let (tx, commands) = mpsc::channel(16);
        let serving = Serving {
            stop,
            workers,
            admin,
            records,
        };
        let task = tokio::spawn(daemon.serve(commands, auto_bans, fleet_in, serving));
        Ok(Handle {
            commands: Commands(tx),
            listeners: addrs,
            admin: admin_addr,
            shared,
            services,
            loops,
            task: Some(task),
        })
    }

    /// The main loop: one command, ban or sweep at a time, so the kernel
    /// maps, the gate and the state file have one writer.
    async fn serve(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut auto_bans: mpsc::Receiver<AutoBan>,
        mut fleet_in: Option<mpsc::Receiver<crate::fleet::Incoming>>,
        serving: Serving,
    ) -> Result<Exit> {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        let mut reports = Vec::with_capacity(escalate::BATCH);
        let (exit, grace) = loop {
            tokio::select! {
                command = commands.recv() => match command {
                    // Every handle is gone: nobody can stop it otherwise.
                    None => break (Exit::Stopped, None),
                    Some(Command::Shutdown(grace)) => break (Exit::Stopped, grace),
                    Some(Command::Request(Request::Upgrade { binary }, reply)) => {
                        let (answer, handed_over) = self.upgrade(&binary).await;
                        let _ = reply.send(answer);
                        if handed_over {
                            break (Exit::HandedOver, None);
                        }
                    }
                    Some(Command::Request(request, reply)) => {
                        let _ = reply.send(self.handle(request));
                    }
                    Some(Command::Reload(config, reply)) => {
                        let _ = reply.send(self.reload(*config));
                    }
                    Some(Command::AutoBans(reports, reply)) => {
                        let _ = reply.send(self.auto_bans(reports));
                    }
                    Some(Command::Inspect(look)) => look(self.reconciler.filter()),
                    Some(Command::ReopenLog) => match &self.shared.load().access_log {
                        Some(log) => log.reopen(),
                        None => info!("no access log file to reopen"),
                    },
                    Some(Command::Ping(reply)) => {
                        let _ = reply.send(());
                    }
                },
                // Every report waiting, as one batch (see `autoban`).
                1.. = auto_bans.recv_many(&mut reports, escalate::BATCH) => {
                    if let Err(e) = self.auto_bans(std::mem::take(&mut reports)) {
                        error!("escalation ban: {e:#}");
                    }
                },
                Some(batch) = fleet::next_incoming(&mut fleet_in) => self.fleet_apply(batch),
                _ = sweep.tick() => {
                    if let Err(e) = self.sweep() {
                        error!("sweeping expired entries: {e:#}");
                    }
                    self.autoban_tick();
                    self.refresh_known();
                }
            }
        };
        self.stop(exit, grace, serving).await?;
        Ok(exit)
    }

    /// Starts `binary` with this configuration and waits until it serves;
    /// the reply, and whether it did (this daemon then stops).
    async fn upgrade(&self, binary: &std::path::Path) -> (Reply, bool) {
        match upgrade::start_successor(binary, self.source.as_deref()).await {
            Ok(pid) => {
                info!(
                    "upgrade: {} (pid {pid}) is serving; draining and exiting",
                    binary.display()
                );
                (Reply::ok(serde_json::json!({ "pid": pid })), true)
            }
            Err(e) => {
                error!("upgrade failed: {e:#}");
                (Reply::error(format!("{e:#}")), false)
            }
        }
    }

    /// Stops accepting, drains within the grace period, and leaves the
    /// filter as `on_exit` says (or to the daemon it was handed over to).
    async fn stop(mut self, exit: Exit, grace: Option<Duration>, serving: Serving) -> Result<()> {
        // Auto-bans since the last sweep: written before anything else can fail.
        self.flush(true);
        let grace = grace.unwrap_or(self.config.http.grace_period);
        info!("stopping: no new connections; in-flight requests get {grace:?}");
        let _ = serving.stop.send(Some(grace));
        let workers = serving.workers;
        tokio::task::spawn_blocking(move || {
            for t in workers {
                match t.join() {
                    Ok(Err(e)) => error!("worker: {e:#}"),
                    Err(_) => error!("a worker panicked"),
                    Ok(Ok(())) => {}
                }
            }
        })
        .await?;
        if let Some(admin) = serving.admin {
            admin.abort();
        }
        if let Some(records) = serving.records {
            records.abort();
        }
        if exit == Exit::HandedOver {
            // The new daemon runs the filter now (it adopted the pinned link).
            info!("upgrade complete: exiting, the new daemon serves and filters");
            return Ok(());
        }
        if let (Some(f), Some(settings)) =
            (self.reconciler.take_filter(), self.config.filter.as_ref())
        {
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

    /// Attaches the loaded filter to its interfaces. If that fails, the
    /// gate takes over, with the runtime entries restored into it.
    fn attach_filter(&mut self) -> Result<()> {
        let settings = self.config.clone();
        let (Some(f), Some(settings)) = (self.reconciler.filter_mut(), settings.filter.as_ref())
        else {
            return Ok(());
        };
        let attached = settings
            .interfaces
            .iter()
            .try_for_each(|iface| f.attach(iface, settings.mode).map(drop));
        match attached {
            Ok(()) => {
                // Only now: until the attach, the program it replaced may
                // have been giving sources LRU entries this one's filter
                // does not mark (filter/known.rs).
                match f.rebuild_known() {
                    Ok(n) => debug!("known-source filter on ({n:?} sources)"),
                    Err(e) => warn!("known-source filter left off: {e:#}"),
                }
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
                self.reconciler.take_filter();
                let why = format!("the XDP filter could not be attached ({e:#})");
                userspace_instead(&why, self.reconciler.gate());
                self.restore_lists()?;
            }
        }
        Ok(())
    }
}

impl Daemon {
    /// Rebuilds the XDP program's known-source filter if it filled up, and
    /// its listed-source filter once enough list entries and bans have gone.
    fn refresh_known(&mut self) {
        if let Some(f) = self.reconciler.filter_mut() {
            match f.refresh_known() {
                Ok(Some(n)) => debug!("known-source filter rebuilt from {n} sources"),
                Ok(None) => {}
                Err(e) => warn!("rebuilding the known-source filter: {e:#}"),
            }
            match f.maps.refresh_listed() {
                Ok(Some(n)) => debug!("listed-source filter rebuilt from {n} entries"),
                Ok(None) => {}
                Err(e) => warn!("rebuilding the listed-source filter: {e:#}"),
            }
        }
    }

    /// Starts handing the XDP program's log records to this process's log.
    fn forward_records(&mut self) -> Option<JoinHandle<()>> {
        match self.reconciler.filter_mut()?.records() {
            Ok(records) => Some(tokio::spawn(crate::filter::forward(records))),
            Err(e) => {
                warn!("the XDP program's log records will not be shown: {e}");
                None
            }
        }
    }
}

/// The XDP filter, loaded (pinned maps adopted) but not attached, when it
/// can run; otherwise, said once and clearly, the gate enforces the same
/// lists, bans and connection rate at accept time.
fn kernel_or_userspace(settings: Option<&FilterSettings>, gate: &Gate) -> Option<Filter> {
    let why = match settings {
        Some(s) if !s.interfaces.is_empty() => match Filter::open(s) {
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

#[cfg(test)]
impl Daemon {
    /// A daemon serving nothing, with the gate enforcing, its main loop
    /// not running: unit tests call its verbs directly.
    pub(super) fn userspace(config: Config, source: Option<PathBuf>) -> Result<Daemon> {
        let config = Arc::new(config);
        let services = Arc::new(Services::new(mpsc::channel(1).0));
        let shared = SharedState::new(State::build(config.clone(), services.clone(), None));
        userspace_instead("a unit test", &services.gate);
        let mut daemon = Daemon {
            source,
            config: config.clone(),
            reconciler: reconcile::Reconciler::new(
                None,
                services.gate.clone(),
                services.switches.clone(),
            ),
            shared: shared.clone(),
            runtime: StateFile::open(&config.control.state_file)?,
            listeners: listeners::Listeners::of(&[])?,
            bans: Default::default(),
            autobans: autobans::AutoBans::new(services.metrics.autobans.clone()),
            log_override: None,
            fleet: None,
        };
        daemon.reconcile_into(config, &shared.load())?;
        daemon.restore()?;
        Ok(daemon)
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;

    /// A oneshot's sender dropped unanswered is how a command learns the
    /// daemon stopped: the reply says so rather than hanging.
    #[tokio::test]
    async fn a_command_to_a_stopped_daemon_is_answered() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let commands = Commands(tx);
        let reply = commands.command(Request::Stats).await;
        assert_eq!(reply.error.as_deref(), Some("the daemon is stopping"));
        let (tx, mut rx) = mpsc::channel(1);
        let commands = Commands(tx);
        let asked = tokio::spawn(async move { commands.command(Request::Stats).await });
        match rx.recv().await {
            Some(Command::Request(_, reply)) => drop::<oneshot::Sender<Reply>>(reply),
            _ => panic!("expected the request"),
        }
        assert!(!asked.await.unwrap().ok);
    }
}
