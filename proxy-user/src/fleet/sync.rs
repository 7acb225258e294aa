//! The fleet task: publishes this host's changes, reads the others' from
//! the log every [`POLL`], and resynchronises after a start or an outage.
//!
//! Resynchronising (when Redis answers again, or at start):
//! 1. read the keys' epoch (made if missing): a different one than the
//!    cursor's means Redis lost the keys (restarted empty, failed over to a
//!    replica that never had them): every own entry is republished;
//! 2. publish what is pending (changes made while Redis was away);
//! 3. catch up: from the cursor through the log when nothing after it was
//!    trimmed (exact), else the whole snapshot, then the log from where
//!    the snapshot was read.
//!
//! Failures never reach the main loop: a failed step marks Redis down
//! (said once), and the next attempt waits a backoff of 100 ms doubling
//! to 1 s (so a returning Redis is in use again within about a second).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use log::{debug, info, warn};
use tokio::sync::mpsc;

use super::{
    FleetError, Incoming, Outgoing,
    entry::{self, Change, DecodeError, Op},
    status::{Beat, Status},
    store::{BATCH, Store, StreamId},
    store::{fresh_epoch, now_ms},
};
use crate::{
    metrics::fleet::FleetMetrics,
    state_file::{FleetCursor, unix_now},
};

/// How often the log is read.
pub const POLL: Duration = Duration::from_millis(100);
/// How often this host's heartbeat is written and the epoch checked.
pub const BEAT: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Most entries a snapshot read keeps (the kernel maps hold fewer).
const MAX_SNAPSHOT: usize = 1 << 20;
/// Changes waiting for Redis beyond this are dropped and every own entry
/// is republished instead when it answers.
const MAX_PENDING: usize = 100_000;

enum Link {
    /// Not synchronised: try at `next` (after `backoff`).
    Down {
        next: Instant,
        backoff: Duration,
        since: Instant,
        said: bool,
    },
    Up,
}

pub(super) struct Sync {
    store: Store,
    host: String,
    /// This host's shared entries by snapshot field: what it republishes.
    own: BTreeMap<String, Change>,
    pending: Vec<Change>,
    republish: bool,
    cursor: Option<(String, StreamId)>,
    link: Link,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    to_daemon: mpsc::Sender<Incoming>,
    status: Arc<Mutex<Status>>,
    metrics: Arc<FleetMetrics>,
    last_beat: Option<Instant>,
}

impl Sync {
    #[expect(
        clippy::too_many_arguments,
        reason = "the task's parts, named once at its start"
    )]
    pub(super) fn new(
        store: Store,
        host: String,
        own: Vec<crate::state_file::Entry>,
        cursor: Option<FleetCursor>,
        rx: mpsc::UnboundedReceiver<Outgoing>,
        to_daemon: mpsc::Sender<Incoming>,
        status: Arc<Mutex<Status>>,
        metrics: Arc<FleetMetrics>,
    ) -> Sync {
        let own = own
            .iter()
            .map(|e| {
                let c = Change::add(e, &host);
                (c.key(), c)
            })
            .collect();
        let cursor = cursor.and_then(|c| Some((c.epoch, StreamId::parse(&c.id)?)));
        Sync {
            store,
            host,
            own,
            pending: Vec::new(),
            // At start: Redis may never have had what this host added
            // while it was unreachable, before a restart.
            republish: true,
            cursor,
            link: Link::Down {
                next: Instant::now(),
                backoff: MIN_BACKOFF,
                since: Instant::now(),
                said: false,
            },
            rx,
            to_daemon,
            status,
            metrics,
            last_beat: None,
        }
    }

    pub(super) async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                m = self.rx.recv() => match m {
                    None => return,
                    Some(m) => {
                        self.take(m);
                        while let Ok(m) = self.rx.try_recv() {
                            self.take(m);
                        }
                    }
                },
                _ = tick.tick() => {}
            }
            match self.step().await {
                Ok(()) => {}
                Err(FleetError::Closed) => return,
                Err(e) => self.down(&e),
            }
            self.show();
        }
    }

    fn take(&mut self, m: Outgoing) {
        match m {
            Outgoing::Publish(c) => {
                match c.op {
                    Op::Add => self.own.insert(c.key(), c.clone()),
                    Op::Del => self.own.remove(&c.key()),
                };
                if self.pending.len() >= MAX_PENDING {
                    // The own entries are exact; republish them all instead.
                    self.pending.clear();
                    self.republish = true;
                }
                self.pending.push(c);
            }
            Outgoing::Forget(key) => {
                self.own.remove(&key);
            }
        }
    }

    /// Whatever is due: resync when down (after the backoff), else publish
    /// what is pending, read the log, and beat once a second.
    async fn step(&mut self) -> Result<(), FleetError> {
        if let Link::Down { next, .. } = &self.link {
            if Instant::now() < *next {
                return Ok(());
            }
            self.resync().await?;
            self.up();
        }
        self.flush().await?;
        self.poll_all().await?;
        if self.last_beat.is_none_or(|t| t.elapsed() >= BEAT) {
            self.beat().await?;
        }
        Ok(())
    }

    async fn resync(&mut self) -> Result<(), FleetError> {
        let epoch = self.store.epoch(&fresh_epoch()).await?;
        let lost = self.cursor.as_ref().is_some_and(|(e, _)| *e != epoch);
        if lost {
            warn!(
                "fleet: Redis lost the fleet's keys (new epoch); republishing this host's {} shared entries",
                self.own.len()
            );
            self.republish = true;
        }
        self.flush().await?;
        let head = self.store.read_log(StreamId::default(), 0).await?;
        match self.cursor.clone() {
            Some((e, id)) if e == epoch && !head.gap_after(id) => {
                self.metrics.resyncs_log.fetch_add(1, Relaxed);
                self.poll_all().await?;
            }
            _ => {
                self.metrics.resyncs_snapshot.fetch_add(1, Relaxed);
                self.snapshot(epoch, head.last, !lost).await?;
                self.poll_all().await?;
            }
        }
        self.beat().await
    }

    /// Publishes what is pending (or, when due, every own entry).
    async fn flush(&mut self) -> Result<(), FleetError> {
        if self.republish {
            let now = unix_now();
            let all: Vec<Change> = self
                .own
                .values()
                .filter(|c| c.expires_at.is_none_or(|t| t > now))
                .cloned()
                .collect();
            for chunk in all.chunks(BATCH) {
                self.store.publish(chunk).await?;
                self.metrics
                    .republished
                    .fetch_add(chunk.len() as u64, Relaxed);
            }
            if !all.is_empty() {
                info!("fleet: {} own shared entries published", all.len());
            }
            self.republish = false;
            self.pending.clear();
        }
        while !self.pending.is_empty() {
            let n = self.pending.len().min(BATCH);
            self.store.publish(&self.pending[..n]).await?;
            self.pending.drain(..n);
            self.metrics.published.fetch_add(n as u64, Relaxed);
        }
        Ok(())
    }

    /// Reads the log until caught up; a gap (trimmed past the cursor, or
    /// the log gone) makes the next step a resync.
    async fn poll_all(&mut self) -> Result<(), FleetError> {
        for _ in 0..64 {
            let Some((epoch, after)) = self.cursor.clone() else {
                return Ok(());
            };
            let r = self.store.read_log(after, BATCH).await?;
            if r.gap_after(after) {
                warn!("fleet: the log was trimmed past this host's position; reading the snapshot");
                self.cursor = None;
                self.mark_down(false);
                return Ok(());
            }
            let full = r.entries.len() == BATCH;
            let now = unix_now();
            let mut changes = Vec::with_capacity(r.entries.len());
            let mut newest = after;
            for (id, v) in r.entries {
                newest = id;
                match entry::decode(&v, now) {
                    Ok(c) => changes.push(c),
                    Err(e) => self.skipped(&e, &format!("log entry {id}")),
                }
            }
            self.metrics
                .lag_ms
                .store(r.last.ms.saturating_sub(newest.ms), Relaxed);
            if newest != after {
                self.metrics
                    .received
                    .fetch_add(changes.len() as u64, Relaxed);
                let cursor = FleetCursor {
                    epoch: epoch.clone(),
                    id: newest.to_string(),
                };
                self.to_daemon
                    .send(Incoming::Log { changes, cursor })
                    .await
                    .map_err(|_| FleetError::Closed)?;
                self.cursor = Some((epoch, newest));
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Reads the whole snapshot, hands it over, and continues the log
    /// from `last` (read before the scan: what changed during it is read
    /// again from the log, and applying a change twice is harmless).
    async fn snapshot(
        &mut self,
        epoch: String,
        last: StreamId,
        prune: bool,
    ) -> Result<(), FleetError> {
        let now = unix_now();
        let mut entries = Vec::new();
        let mut expired = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, pairs) = self.store.scan_snapshot(cursor).await?;
            for (k, v) in pairs {
                match entry::decode(&v, now) {
                    Ok(c) if c.op == Op::Add && c.key().as_bytes() == k.as_slice() => {
                        if c.expires_at.is_some_and(|t| t <= now) {
                            expired.push((k, v));
                        } else if entries.len() < MAX_SNAPSHOT {
                            entries.push(c);
                        }
                    }
                    Ok(_) => self.skipped(
                        &DecodeError::Malformed(
                            "a snapshot field that does not match its entry".into(),
                        ),
                        "snapshot",
                    ),
                    Err(e) => self.skipped(&e, "snapshot"),
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        info!(
            "fleet: read the snapshot ({} entries in force, {} expired removed); continuing from log id {last}",
            entries.len(),
            expired.len()
        );
        self.store.expire(&expired).await?;
        self.metrics
            .received
            .fetch_add(entries.len() as u64, Relaxed);
        let cursor = FleetCursor {
            epoch: epoch.clone(),
            id: last.to_string(),
        };
        self.to_daemon
            .send(Incoming::Snapshot {
                entries,
                cursor,
                prune,
            })
            .await
            .map_err(|_| FleetError::Closed)?;
        self.cursor = Some((epoch, last));
        Ok(())
    }

    /// This host's heartbeat, the epoch check (a new epoch: Redis lost
    /// the keys, resync), and every host's last heartbeat for the status.
    async fn beat(&mut self) -> Result<(), FleetError> {
        self.last_beat = Some(Instant::now());
        // This host's expired entries leave the snapshot (each host lifts
        // them by itself; entries of hosts that are gone go at the next
        // snapshot read).
        let now_s = unix_now();
        let expired: Vec<(Vec<u8>, Vec<u8>)> = self
            .own
            .values()
            .filter(|c| c.expires_at.is_some_and(|t| t <= now_s))
            .map(|c| (c.key().into_bytes(), c.encode().into_bytes()))
            .collect();
        if !expired.is_empty() {
            self.store.expire(&expired).await?;
            self.own
                .retain(|_, c| c.expires_at.is_none_or(|t| t > now_s));
        }
        let epoch = self.store.epoch(&fresh_epoch()).await?;
        if self.cursor.as_ref().is_some_and(|(e, _)| *e != epoch) {
            // Resync at once (`lost` is seen there).
            self.mark_down(false);
            return Ok(());
        }
        let beat = Beat {
            at_ms: now_ms(),
            lag_ms: self.metrics.lag_ms.load(Relaxed),
            own: self.own.len() as u64,
            pending: self.pending.len() as u64,
        };
        let hosts =
            super::status::exchange(&mut self.store, &self.host, &beat, &self.metrics).await?;
        self.lock().hosts = hosts;
        Ok(())
    }

    fn skipped(&self, e: &DecodeError, what: &str) {
        let counter = match e {
            DecodeError::Oversize(_) => &self.metrics.skipped_oversize,
            DecodeError::Malformed(_) => &self.metrics.skipped_malformed,
        };
        // Said once per kind, then counted (rampart_fleet_skipped_total).
        if counter.fetch_add(1, Relaxed) == 0 {
            warn!(
                "fleet: skipped {what}: {e} (counted in rampart_fleet_skipped_total from now on)"
            );
        } else {
            debug!("fleet: skipped {what}: {e}");
        }
    }

    fn up(&mut self) {
        if let Link::Down { since, said, .. } = &self.link {
            if *said {
                info!(
                    "fleet: Redis answers again after {:.1}s; resynchronised",
                    since.elapsed().as_secs_f64()
                );
            } else {
                info!("fleet: synchronised with Redis as host {}", self.host);
            }
        }
        self.link = Link::Up;
        self.metrics.up.store(1, Relaxed);
        let mut s = self.lock();
        s.health = "up".into();
        s.error = None;
        s.since_ms = now_ms();
    }

    fn down(&mut self, e: &FleetError) {
        self.metrics.errors.fetch_add(1, Relaxed);
        let was_up = matches!(self.link, Link::Up);
        if was_up || matches!(self.link, Link::Down { said: false, .. }) {
            warn!(
                "fleet: Redis unreachable or failing ({e}); every list entry and ban in force stays \
                 enforced, changes are kept to publish, retrying with backoff"
            );
        } else {
            debug!("fleet: still failing: {e}");
        }
        self.mark_down(true);
        let mut s = self.lock();
        s.error = Some(e.to_string());
        if was_up {
            s.since_ms = now_ms();
        }
        s.health = "down".into();
    }

    /// Resync at the next step; `failed`: after an error (back off, and
    /// the outage has been said).
    fn mark_down(&mut self, failed: bool) {
        let (backoff, since, said) = match &self.link {
            Link::Down {
                backoff,
                since,
                said,
                ..
            } if failed => ((*backoff * 2).min(MAX_BACKOFF), *since, *said || failed),
            Link::Down { since, said, .. } => (MIN_BACKOFF, *since, *said),
            Link::Up => (MIN_BACKOFF, Instant::now(), failed),
        };
        self.link = Link::Down {
            next: if failed {
                Instant::now() + backoff
            } else {
                Instant::now()
            },
            backoff,
            since,
            said,
        };
        if failed {
            self.metrics.up.store(0, Relaxed);
        }
    }

    fn show(&self) {
        self.metrics
            .pending
            .store(self.pending.len() as u64, Relaxed);
        let mut s = self.lock();
        s.pending = self.pending.len() as u64;
        s.own = self.own.len() as u64;
        s.lag_ms = self.metrics.lag_ms.load(Relaxed);
        s.cursor = self.cursor.as_ref().map(|(e, id)| format!("{e}/{id}"));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}
