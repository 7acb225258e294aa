//! The configuration snapshot: everything a request needs that follows
//! from one configuration (routes, upstream groups, limit zones, the access
//! log, escalation rules), built off to the side on reload and swapped in
//! whole ([`SharedState`]). What lives as long as the process is not part of it:
//! it refers to the [`Services`] the daemon made once.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, RwLock},
};

use super::{NO_ROUTE, Services, budget};
use crate::{
    access_log::AccessLog, config::Config, escalate::Escalation, limit::Limiter,
    metrics::RouteMetrics, upstream::Group,
};

/// Everything a request needs, built from one configuration.
pub struct State {
    pub config: Arc<Config>,
    pub groups: BTreeMap<String, Arc<Group>>,
    pub limiters: BTreeMap<String, Arc<Limiter>>,
    /// The access log file; `None` logs access lines through the daemon's log.
    pub access_log: Option<Arc<AccessLog>>,
    /// Escalation rules' counters.
    pub escalation: Escalation,
    /// Memory for request bodies: this configuration's `body_memory`, and
    /// the count of what is held, kept across reloads.
    pub bodies: budget::Budget,
    /// The process's services: the gate, switches, metrics, kicks...
    pub services: Arc<Services>,
    /// This configuration's routes' measures, by index (then one for
    /// requests answered without a route).
    route_metrics: Vec<Arc<RouteMetrics>>,
}

impl State {
    /// Builds the snapshot for `config` with `services`, carrying state
    /// over from `previous`: upstream groups whose settings did not change
    /// are kept whole (health, failures, keep-alive connections, health
    /// checks), and a changed group keeps the state of the servers it still
    /// has; limit zones whose settings did not change keep their clients'
    /// state. Nothing starts: a new group's health checks and a new access
    /// log's writer start when the snapshot is installed ([`State::start`]).
    pub fn build(config: Arc<Config>, services: Arc<Services>, previous: Option<&State>) -> State {
        let groups: BTreeMap<String, Arc<Group>> = config
            .upstreams
            .iter()
            .map(|(n, u)| {
                let before = previous.and_then(|p| p.groups.get(n));
                if let Some(same) = before.filter(|g| g.config == *u) {
                    return (n.clone(), same.clone());
                }
                let group = Arc::new(Group::carrying(u.clone(), before.map(|g| &**g)));
                (n.clone(), group)
            })
            .collect();
        let limiters = config
            .limits
            .iter()
            .map(|(n, z)| {
                let kept = previous
                    .and_then(|p| p.limiters.get(n))
                    .filter(|l| l.zone == *z)
                    .cloned();
                (
                    n.clone(),
                    kept.unwrap_or_else(|| Arc::new(Limiter::new(z.clone()))),
                )
            })
            .collect();
        let access_log = config.http.access_log.as_ref().and_then(|path| {
            let format = &config.http.access_log_format;
            let previous = previous.and_then(|p| p.access_log.clone());
            if let Some(prev) = previous.filter(|l| l.path == *path && l.format() == format) {
                return Some(prev);
            }
            match AccessLog::open(path, format.clone()) {
                Ok(log) => Some(Arc::new(log)),
                Err(e) => {
                    log::error!(
                        "access log {}: {e}; logging access through the daemon log",
                        path.display()
                    );
                    None
                }
            }
        });
        let metrics = &services.metrics;
        let route_metrics = (0..config.routes.len())
            .map(|i| metrics.route(&config.route_name(i)))
            .chain(std::iter::once(metrics.route(NO_ROUTE)))
            .collect();
        let escalation = Escalation::new(
            &config.escalate,
            previous.map(|p| &p.escalation),
            services.escalation.clone(),
        );
        let bodies = budget::Budget::new(config.http.body_memory, previous.map(|p| &p.bodies));
        State {
            config,
            groups,
            limiters,
            access_log,
            escalation,
            bodies,
            services,
            route_metrics,
        }
    }

    /// Starts what this snapshot brings, installed in place of `previous`:
    /// the health checks and name resolution of the groups `previous` did
    /// not have (all of them without one), and the access log's writer if
    /// the log is new.
    pub fn start(&self, previous: Option<&State>) {
        for group in self.new_groups(previous) {
            crate::upstream::spawn_checks(group);
            crate::upstream::spawn_resolution(group);
        }
        if let Some(log) = &self.access_log {
            log.start();
        }
    }

    fn new_groups<'a>(
        &'a self,
        previous: Option<&'a State>,
    ) -> impl Iterator<Item = &'a Arc<Group>> {
        self.groups.iter().filter_map(move |(name, g)| {
            let kept = previous
                .and_then(|p| p.groups.get(name))
                .is_some_and(|p| Arc::ptr_eq(p, g));
            (!kept).then_some(g)
        })
    }

    /// Every route's name (as views and metrics name them), then the
    /// requests answered without a route.
    pub fn route_names(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        (0..self.config.routes.len())
            .map(|i| self.config.route_name(i))
            .chain(std::iter::once(NO_ROUTE.to_string()))
            .filter(|n| seen.insert(n.clone()))
            .collect()
    }

    /// The measures of route `index` (`None`: answered without a route).
    pub fn route_metrics(&self, index: Option<usize>) -> &RouteMetrics {
        &self.route_metrics[index.unwrap_or(self.config.routes.len())]
    }

    /// The group a route naming `name` sends to: `name`, or the group it
    /// is switched to.
    pub fn group(&self, name: &str) -> Option<&Arc<Group>> {
        if let Some(to) = self.services.switches.get(name)
            && let Some(g) = self.groups.get(&to)
        {
            return Some(g);
        }
        self.groups.get(name)
    }
}

/// The current snapshot, swapped whole on reload.
#[derive(Clone)]
pub struct SharedState(Arc<RwLock<Arc<State>>>);

impl SharedState {
    pub fn new(state: State) -> SharedState {
        SharedState(Arc::new(RwLock::new(Arc::new(state))))
    }

    pub fn load(&self) -> Arc<State> {
        self.0.read().unwrap().clone()
    }

    pub fn store(&self, state: State) {
        *self.0.write().unwrap() = Arc::new(state);
    }
}
