//! What lives as long as the process, whatever configuration is in force:
//! made once by the daemon, before the first configuration snapshot, and
//! handed to every snapshot ([`super::State`]) rather than made or
//! carried over by one. Constructing them starts nothing.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Switches, websocket::GoingAway};
use crate::{
    escalate::{AutoBan, Sink},
    gate::Gate,
    kick::Kicks,
    metrics::Registry,
};

#[derive(Debug)]
pub struct Services {
    /// The userspace gate: lists, bans and the connection rate at accept
    /// time when XDP cannot run (written only by the daemon's reconciler).
    pub gate: Arc<Gate>,
    /// Blue-green switches: open connections follow a switch too.
    pub switches: Arc<Switches>,
    /// The maintenance switch (`rampart maintenance`): every request 503.
    pub maintenance: Arc<super::error_page::Maintenance>,
    /// The measures, kept by name across reloads.
    pub metrics: Arc<Registry>,
    /// Where escalation's reports go: the daemon's main loop.
    pub escalation: Sink,
    /// Tells WebSocket tunnels to close with 1001 at shutdown.
    pub going_away: Arc<GoingAway>,
    /// Closes the open connections of sources refused since they were accepted.
    pub kicks: Arc<Kicks>,
}

impl Services {
    /// Everything fresh; escalation reports to `reports`.
    pub fn new(reports: mpsc::Sender<AutoBan>) -> Services {
        let metrics = Arc::new(Registry::default());
        Services {
            gate: Arc::default(),
            switches: Arc::default(),
            maintenance: Arc::default(),
            escalation: Sink {
                queue: reports,
                metrics: metrics.autobans.clone(),
            },
            metrics,
            going_away: Arc::default(),
            kicks: Arc::default(),
        }
    }
}
