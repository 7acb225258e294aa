//! The fleet: hosts that share block/allow entries and bans through Redis
//! (issue 18, docs/fleet.md). Redis is never on the packet or request
//! path: this subsystem is one task beside the daemon's main loop, joined
//! to it by two channels.
//!
//! ```text
//!  main loop ──Outgoing (own adds/removes, unbounded, never waits)──▶ fleet task ──▶ Redis
//!  main loop ◀──Incoming (others' changes + log cursor, batched)──── fleet task ◀── Redis
//! ```
//!
//! The main loop applies what comes in through the same path the CLI's
//! `block`/`allow` verbs use (`daemon/fleet.rs`), so the kernel maps (or the
//! userspace gate) and the state file have one writer. When Redis is down,
//! slow or empty, nothing waits for it: every host keeps what it enforces,
//! and the task resynchronises when Redis is back ([`sync`]).
//!
//! Layout: [`entry`] the wire format and its checks, [`store`] the keys and
//! commands, [`sync`] the task (publish, read, catch up, resync),
//! [`status`] what `rampart fleet status` and `/metrics` show, [`counts`]
//! fleet-wide limits (per-source counts exchanged in batches), [`kernel`]
//! the kernel tier's threshold (`[filter] fleet_pps`, counts from the XDP maps).

pub mod counts;
pub mod entry;
pub mod kernel;
pub mod status;
pub mod store;
mod sync;
pub mod top;

use std::sync::{Arc, Mutex};

pub use entry::Change;
pub use status::Status;
use tokio::sync::mpsc;

use crate::{
    config::FleetSettings,
    metrics::fleet::FleetMetrics,
    state_file::{Entry, FleetCursor},
};

/// Batches of incoming changes the main loop may have waiting.
const INCOMING: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis answered with something that is not {0}")]
    Protocol(&'static str),
    #[error("the daemon's main loop stopped")]
    Closed,
}

/// What the main loop tells the fleet task.
#[derive(Debug)]
pub enum Outgoing {
    /// This host added or removed a shared entry: publish it.
    Publish(Change),
    /// An entry this host had published is no longer its own (removed or
    /// replaced from another host): never republish it.
    Forget(String),
}

/// What the fleet task hands the main loop.
#[derive(Debug)]
pub enum Incoming {
    /// Changes from the log in order; the cursor is after the last one.
    Log {
        changes: Vec<Change>,
        cursor: FleetCursor,
    },
    /// Every entry in the snapshot (a host that was away longer than the
    /// log keeps, or new). `prune`: entries from other hosts that are not
    /// in it were removed meanwhile. Not when Redis came back empty: those
    /// hosts republish their own.
    Snapshot {
        entries: Vec<Change>,
        cursor: FleetCursor,
        prune: bool,
    },
}

/// The main loop's side of the fleet.
pub struct Fleet {
    /// This host's id.
    pub host: String,
    tx: mpsc::UnboundedSender<Outgoing>,
    status: Arc<Mutex<Status>>,
}

impl Fleet {
    /// Starts the fleet task on the current runtime. `own`: the entries
    /// this host shares (from the state file: republished at once, in case
    /// Redis never got them); `cursor`: where it left the log.
    pub fn start(
        settings: &FleetSettings,
        own: Vec<Entry>,
        cursor: Option<FleetCursor>,
        metrics: Arc<FleetMetrics>,
    ) -> Result<(Fleet, mpsc::Receiver<Incoming>), FleetError> {
        let store = store::Store::new(settings)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(INCOMING);
        let status = Arc::new(Mutex::new(Status::new(settings)));
        let task = sync::Sync::new(
            store,
            settings.host_id.clone(),
            own,
            cursor,
            rx,
            in_tx,
            status.clone(),
            metrics,
        );
        tokio::spawn(task.run());
        Ok((
            Fleet {
                host: settings.host_id.clone(),
                tx,
                status,
            },
            in_rx,
        ))
    }

    /// Shares a change of this host's; never waits.
    pub fn publish(&self, change: Change) {
        let _ = self.tx.send(Outgoing::Publish(change));
    }

    pub fn forget(&self, key: String) {
        let _ = self.tx.send(Outgoing::Forget(key));
    }

    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
