//! The shared entries' side of simulated hosts: each runs the product's
//! fleet task ([`Fleet::start`], its own Redis connection, the log read
//! every 100 ms, a heartbeat a second), and a stand-in for the daemon's
//! main loop that takes what the task hands it ([`Incoming`]) and notes
//! when each ban reached the host (the daemon would put it in its XDP maps
//! there: `Daemon::fleet_apply`, measured end to end in
//! `tests/kernel/fleet.rs`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use proxy_user::{
    cidr::Cidr,
    fleet::{Change, Fleet, Incoming, entry::Op},
    metrics::fleet::FleetMetrics,
    state_file::{Entry, ListName, unix_now},
};
use tokio::{sync::mpsc, task::JoinHandle};

use crate::common::{host_id, settings};

/// When each host first enforced each ban: issued or received.
pub type Enforced = Arc<Mutex<HashMap<Cidr, Vec<Option<Instant>>>>>;

/// `hosts` fleet tasks against the Redis on `port`, synchronised.
pub struct Hosts {
    pub fleets: Vec<Arc<Fleet>>,
    pub metrics: Vec<Arc<FleetMetrics>>,
    pub enforced: Enforced,
    /// Changes from other hosts received, over all hosts.
    pub received: Arc<Mutex<u64>>,
    loops: Vec<JoinHandle<()>>,
}

impl Hosts {
    pub async fn start(port: u16, name: &str, hosts: usize) -> Hosts {
        let enforced: Enforced = Arc::default();
        let received = Arc::new(Mutex::new(0));
        let (mut fleets, mut metrics, mut loops) = (Vec::new(), Vec::new(), Vec::new());
        for h in 0..hosts {
            let m = Arc::new(FleetMetrics::default());
            let (fleet, rx) = Fleet::start(&settings(port, name, h), Vec::new(), None, m.clone())
                .expect("a fleet task");
            loops.push(tokio::spawn(main_loop(
                h,
                hosts,
                rx,
                enforced.clone(),
                received.clone(),
            )));
            fleets.push(Arc::new(fleet));
            metrics.push(m);
        }
        let all = Hosts {
            fleets,
            metrics,
            enforced,
            received,
            loops,
        };
        // Every task synchronised and every host heard from by every host
        // (the kernel thresholds' floor depends on it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && !all
                .metrics
                .iter()
                .all(|m| m.up.load(Relaxed) == 1 && m.hosts_live.load(Relaxed) == hosts as u64)
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        all
    }

    /// Host `h` enforces `cidr` now (if it did not already) and tells
    /// `true` if that is new; a new ban is shared like the daemon's.
    pub fn ban(&self, h: usize, cidr: Cidr, reason: String) -> bool {
        if !note(&self.enforced, h, self.fleets.len(), cidr) {
            return false;
        }
        let entry = Entry {
            list: ListName::Block,
            cidr,
            origin: "auto-ban".into(),
            reason: Some(reason),
            expires_at: Some(unix_now() + 600),
            host: None,
            local: false,
        };
        self.fleets[h].publish(Change::add(&entry, &host_id(h)));
        true
    }

    /// When each host enforced `cidr` (None: not yet).
    pub fn enforced(&self, cidr: &Cidr) -> Vec<Option<Instant>> {
        let all = self.enforced.lock().unwrap();
        all.get(cidr)
            .cloned()
            .unwrap_or_else(|| vec![None; self.fleets.len()])
    }

    /// Stops every task (their channels close) and waits for them.
    pub async fn stop(self) {
        drop(self.fleets);
        for l in self.loops {
            let _ = tokio::time::timeout(Duration::from_secs(5), l).await;
        }
    }
}

/// Host `h` enforces `cidr` now, unless it already does: whether it is new.
fn note(enforced: &Enforced, h: usize, hosts: usize, cidr: Cidr) -> bool {
    let mut all = enforced.lock().unwrap();
    let at = &mut all.entry(cidr).or_insert_with(|| vec![None; hosts])[h];
    if at.is_some() {
        return false;
    }
    *at = Some(Instant::now());
    true
}

/// What the daemon's main loop does with the fleet's changes, as far as
/// the simulation needs: bans from other hosts are in force from now.
async fn main_loop(
    h: usize,
    hosts: usize,
    mut rx: mpsc::Receiver<Incoming>,
    enforced: Enforced,
    received: Arc<Mutex<u64>>,
) {
    let me = host_id(h);
    while let Some(incoming) = rx.recv().await {
        let changes = match incoming {
            Incoming::Log { changes, .. } => changes,
            Incoming::Snapshot { entries, .. } => entries,
        };
        for c in changes.iter().filter(|c| c.host != me && c.op == Op::Add) {
            *received.lock().unwrap() += 1;
            note(&enforced, h, hosts, c.cidr);
        }
    }
}
