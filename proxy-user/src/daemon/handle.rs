//! A running daemon, from the outside: the commands it takes and how to
//! stop it. Everything that changes a running daemon comes through here,
//! one command at a time into its main loop: the control socket's requests,
//! signals (through [`super::run`]), and tests calling it directly.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Result, anyhow};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    config::Config,
    control_socket::protocol::{Reply, Request},
    escalate::AutoBan,
    filter::Filter,
    http::Services,
    http::SharedState,
};

/// What the main loop is asked to do.
pub(super) enum Command {
    /// A control request, as the control socket carries it.
    Request(Request, oneshot::Sender<Reply>),
    /// Apply this configuration (validated by the caller).
    Reload(Box<Config>, oneshot::Sender<Result<String>>),
    /// Reopen the access log file (after log rotation).
    ReopenLog,
    /// Carry out escalation reports as one batch, as when they arrive together.
    AutoBans(Vec<AutoBan>, oneshot::Sender<Result<()>>),
    /// Look at the XDP filter, if it runs (tests, diagnostics).
    Inspect(Look),
    /// Answer at once: the main loop is turning.
    Ping(oneshot::Sender<()>),
    /// Stop: in-flight requests get this long (`None`: `grace_period`).
    Shutdown(Option<Duration>),
}

/// A look at the XDP filter (`None`: it does not run).
pub(super) type Look = Box<dyn FnOnce(Option<&Filter>) + Send>;

/// How the daemon ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Told to stop; the filter kept or detached as `on_exit` says.
    Stopped,
    /// A new binary serves now (an upgrade); the filter stays with it.
    HandedOver,
}

/// Sends commands to a running daemon; cheap to clone.
#[derive(Clone)]
pub struct Commands(pub(super) mpsc::Sender<Command>);

const STOPPED: &str = "the daemon is stopping";

impl Commands {
    /// Carries out one control request, as if it came over the control socket.
    pub async fn command(&self, request: Request) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.0.send(Command::Request(request, tx)).await.is_err() {
            return Reply::error(STOPPED);
        }
        rx.await.unwrap_or_else(|_| Reply::error(STOPPED))
    }

    /// Applies `config` as a reload does; on error nothing changed.
    pub async fn reload(&self, config: Config) -> Result<String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Command::Reload(Box::new(config), tx))
            .await
            .map_err(|_| anyhow!(STOPPED))?;
        rx.await.map_err(|_| anyhow!(STOPPED))?
    }

    /// Carries out escalation reports as one batch, as the main loop
    /// does with reports that arrive together.
    pub async fn auto_bans(&self, reports: Vec<AutoBan>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(Command::AutoBans(reports, tx))
            .await
            .map_err(|_| anyhow!(STOPPED))?;
        rx.await.map_err(|_| anyhow!(STOPPED))?
    }

    /// `look` at the XDP filter between two commands, when the filter
    /// runs (`None` otherwise): its program and its maps as the daemon
    /// holds them.
    pub async fn with_filter<R: Send + 'static>(
        &self,
        look: impl FnOnce(&Filter) -> R + Send + 'static,
    ) -> Result<Option<R>> {
        let (tx, rx) = oneshot::channel();
        let look = Box::new(move |f: Option<&Filter>| {
            let _ = tx.send(f.map(look));
        });
        self.0
            .send(Command::Inspect(look))
            .await
            .map_err(|_| anyhow!(STOPPED))?;
        rx.await.map_err(|_| anyhow!(STOPPED))
    }

    pub async fn reopen_log(&self) {
        let _ = self.0.send(Command::ReopenLog).await;
    }

    /// Whether the main loop answers (for the watchdog).
    pub async fn ping(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        self.0.send(Command::Ping(tx)).await.is_ok() && rx.await.is_ok()
    }

    /// Asks the daemon to stop (see [`Handle::shutdown`] to wait for it).
    pub async fn stop(&self, grace: Option<Duration>) {
        let _ = self.0.send(Command::Shutdown(grace)).await;
    }
}

/// A daemon started by [`super::Daemon::start`].
pub struct Handle {
    pub(super) commands: Commands,
    pub(super) listeners: Vec<SocketAddr>,
    pub(super) admin: Option<SocketAddr>,
    pub(super) shared: SharedState,
    pub(super) services: Arc<Services>,
    /// The workers' event loops.
    pub(super) loops: Vec<super::listeners::Loop>,
    pub(super) task: Option<JoinHandle<Result<Exit>>>,
}

impl Handle {
    pub fn commands(&self) -> Commands {
        self.commands.clone()
    }

    /// See [`Commands::command`].
    pub async fn command(&self, request: Request) -> Reply {
        self.commands.command(request).await
    }

    /// See [`Commands::auto_bans`].
    pub async fn auto_bans(&self, reports: Vec<AutoBan>) -> Result<()> {
        self.commands.auto_bans(reports).await
    }

    /// See [`Commands::with_filter`].
    pub async fn with_filter<R: Send + 'static>(
        &self,
        look: impl FnOnce(&Filter) -> R + Send + 'static,
    ) -> Result<Option<R>> {
        self.commands.with_filter(look).await
    }

    /// See [`Commands::reload`].
    pub async fn reload(&self, config: Config) -> Result<String> {
        self.commands.reload(config).await
    }

    /// Where each listener was bound at start, in the configuration's order.
    pub fn listeners(&self) -> &[SocketAddr] {
        &self.listeners
    }

    /// Where the admin listener was bound, if there is one.
    pub fn admin(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The configuration snapshot requests are served with now.
    pub fn shared(&self) -> &SharedState {
        &self.shared
    }

    /// What lives as long as the daemon: the gate, switches, metrics...
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Tasks alive in the workers' event loops: accept loops, and the
    /// connections being served (a connection waiting for its request
    /// head holds none).
    pub fn worker_tasks(&self) -> usize {
        self.loops
            .iter()
            .map(|l| l.runtime.metrics().num_alive_tasks())
            .sum()
    }

    /// The CPU time the workers' threads have used so far (the daemon's
    /// serving, apart from its main loop and whatever else shares the
    /// process): for measurements.
    pub fn worker_cpu(&self) -> Duration {
        self.loops.iter().filter_map(|l| l.cpu.read()).sum()
    }

    /// Stops accepting, lets in-flight requests finish within `grace`
    /// (`None`: the configuration's `grace_period`), and waits for the end.
    pub async fn shutdown(mut self, grace: Option<Duration>) -> Result<Exit> {
        self.commands.stop(grace).await;
        self.exited().await
    }

    /// Waits until the daemon ends by itself (after an upgrade handed over)
    /// or is stopped. Cancel-safe; once it has returned, it returns an error.
    pub async fn exited(&mut self) -> Result<Exit> {
        let Some(task) = self.task.as_mut() else {
            return Err(anyhow!("the daemon has already ended"));
        };
        let result = task.await;
        self.task = None;
        result.map_err(|e| anyhow!("the daemon's main loop: {e}"))?
    }
}
