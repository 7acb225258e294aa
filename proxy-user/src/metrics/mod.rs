//! What the daemon measures, for `/metrics`, the status page and `rampart
//! stats`. A [`Registry`] is made once by the daemon, with its other
//! process-lifetime [`crate::http::Services`], and handed to every
//! configuration snapshot ([`crate::http::State`]), never a global: routes and listeners count into their own entries (kept
//! by name across reloads), upstream groups, limit zones and the gate keep
//! their own counters, and the kernel tier is read from its pinned maps when
//! scraped. Reference: docs/metrics.md.

pub mod autoban;
pub mod backlog;
pub mod fleet;
pub mod histogram;
pub mod listener;
pub mod reload;
pub mod route;
pub mod text;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

pub use listener::ListenerMetrics;
pub use route::{Observed, RouteMetrics};

/// Every measure kept by name.
#[derive(Debug, Default)]
pub struct Registry {
    routes: Mutex<HashMap<String, Arc<RouteMetrics>>>,
    listeners: Mutex<BTreeMap<String, Arc<ListenerMetrics>>>,
    /// Interfaces the XDP program is attached to, with the mode.
    xdp: Mutex<Vec<(String, String)>>,
    /// Listeners bound, and the filter attached or deliberately absent.
    ready: AtomicBool,
    /// Escalation's bans within their bound.
    pub autobans: Arc<autoban::AutoBanMetrics>,
    /// The fleet task's exchanges with Redis (`[fleet]`).
    pub fleet: Arc<fleet::FleetMetrics>,
    /// The configuration generation and when it was applied.
    pub reloads: reload::ReloadMetrics,
}

impl Registry {
    /// The measures of the route named `name` (made on first use).
    pub fn route(&self, name: &str) -> Arc<RouteMetrics> {
        lock(&self.routes)
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The measures of the listener bound at `bind` (as configured).
    pub fn listener(&self, bind: &str) -> Arc<ListenerMetrics> {
        lock(&self.listeners)
            .entry(bind.to_string())
            .or_default()
            .clone()
    }

    pub fn listeners(&self) -> Vec<(String, Arc<ListenerMetrics>)> {
        lock(&self.listeners)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn set_xdp(&self, attached: Vec<(String, String)>) {
        *lock(&self.xdp) = attached;
    }

    pub fn xdp(&self) -> Vec<(String, String)> {
        lock(&self.xdp).clone()
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
