//! The one writer of what is enforced. [`Reconciler::apply`] puts a
//! [`Desired`] state in force by diff against the one in force: the
//! kernel's configured lists and its `config` map (when the XDP filter
//! runs), the userspace gate, the blue-green switches, and the zones and
//! servers of the configuration snapshot. Every value is written once,
//! already final: the configured limit is never written to be overwritten
//! by the CLI's a moment later, and a snapshot's zones and servers get
//! their runtime state before the snapshot is published.
//!
//! List entries and bans made at runtime go through [`Reconciler::enforcer`],
//! the same filter or gate, one at a time.

use std::sync::Arc;

use anyhow::Result;
use log::warn;

use super::{Daemon, desired::Desired};
use crate::{
    config::Config,
    enforcer::Enforcer,
    filter::Filter,
    gate::Gate,
    http::{State, Switches},
    state_file::RuntimeState,
};

pub struct Reconciler {
    /// The XDP filter, when it runs; its maps are written only here.
    filter: Option<Filter>,
    /// Enforces the lists, bans and connection rate in userspace when the
    /// filter is not running; kept configured either way.
    gate: Arc<Gate>,
    switches: Arc<Switches>,
    /// What is in force; `None` until the first [`Reconciler::apply`].
    applied: Option<Desired>,
}

impl Reconciler {
    /// `filter`, when loaded, was loaded with `applied`'s settings in force.
    pub fn new(filter: Option<Filter>, gate: Arc<Gate>, switches: Arc<Switches>) -> Reconciler {
        Reconciler {
            filter,
            gate,
            switches,
            applied: None,
        }
    }

    /// Puts `next` in force, writing only what differs from what is in
    /// force. `state` is the snapshot about to be published (after a
    /// reload) or the one in force: its zones and servers get `next`'s
    /// values. On an error the kernel part may be half written; the next
    /// apply writes what differs again.
    pub fn apply(&mut self, next: Desired, state: &State) -> Result<()> {
        let was = self.applied.take();
        let lists_changed = was
            .as_ref()
            .is_none_or(|w| !Arc::ptr_eq(&w.config, &next.config) && w.lists() != next.lists());
        if let Some(f) = &mut self.filter
            && let Some(config) = next.kernel_config()
        {
            // Lists first: a new limit never applies to a source the new
            // configuration allows.
            if lists_changed {
                let (allow, block) = next.lists();
                f.sync_lists(allow, block)?;
            }
            if was.as_ref().and_then(Desired::kernel_config) != Some(config) {
                f.maps.write_config(config)?;
            }
            let budget = next.config.filter.as_ref().map(|s| &s.new_sources);
            let had = was
                .as_ref()
                .and_then(|w| w.config.filter.as_ref())
                .map(|s| &s.new_sources);
            if let Some(settings) = budget
                && had != Some(settings)
            {
                crate::filter::NewSourceMap::open(f.maps.dir())?.write(settings)?;
            }
            // The SYN-cookie settings, once the limits they follow are in force.
            let syn_cookies = next.config.filter.as_ref().map(|s| &s.syn_cookies);
            let had = was
                .as_ref()
                .and_then(|w| w.config.filter.as_ref())
                .map(|s| &s.syn_cookies);
            if let Some(settings) = syn_cookies
                && had != Some(settings)
            {
                f.syn.write(f.maps.dir(), settings)?;
            }
        }
        let gate_changed = lists_changed
            || was
                .as_ref()
                .is_none_or(|w| (w.syn, w.ipv6_prefix()) != (next.syn, next.ipv6_prefix()));
        if gate_changed {
            let (allow, block) = next.lists();
            self.gate
                .configure(allow, block, next.syn, next.ipv6_prefix());
        }
        let switched = was.as_ref().map(|w| &w.switches);
        if switched != Some(&next.switches) {
            for group in switched.into_iter().flat_map(|s| s.keys()) {
                if !next.switches.contains_key(group) {
                    self.switches.set(group, None);
                }
            }
            for (group, to) in &next.switches {
                self.switches.set(group, Some(to));
            }
        }
        for (name, limiter) in &state.limiters {
            if let Some(z) = next.zones.get(name)
                && (limiter.rate(), limiter.burst()) != (z.rate.per_1000s, z.burst)
            {
                limiter.set(z.rate, z.burst);
            }
        }
        for (group, g) in &state.groups {
            for b in g.backends().iter() {
                if let Some(s) = next.servers.get(&format!("{group}/{}", b.addr)) {
                    if b.drained() != s.drained {
                        b.set_drained(s.drained);
                    }
                    if b.weight() != s.weight {
                        b.set_weight(s.weight);
                    }
                }
            }
        }
        self.applied = Some(next);
        Ok(())
    }

    /// Where runtime list entries and bans are written: the kernel maps,
    /// or the gate.
    /// Changes go to the gate too when the kernel enforces: its copy is
    /// what the L7 tier checks for clients behind trusted proxies.
    pub fn enforcer(&mut self) -> crate::enforcer::Tiers<'_> {
        crate::enforcer::Tiers {
            kernel: self.filter.as_mut().map(|f| &mut f.maps),
            gate: &self.gate,
        }
    }

    pub fn enforcer_ref(&self) -> &dyn Enforcer {
        match self.filter.as_ref() {
            Some(f) => &f.maps,
            None => &self.gate,
        }
    }

    /// The XDP filter, when it runs.
    pub fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    pub fn filter_mut(&mut self) -> Option<&mut Filter> {
        self.filter.as_mut()
    }

    /// Takes the filter out (to detach it, or because it could not attach).
    pub fn take_filter(&mut self) -> Option<Filter> {
        self.filter.take()
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }
}

// === the daemon's side ===

impl Daemon {
    /// Puts the configuration in force with the runtime state over it,
    /// into `state`: the snapshot about to be published (at start and on
    /// reload), whose zones and servers nobody sees yet. What of the
    /// runtime state no longer applies is logged.
    pub(super) fn reconcile_into(&mut self, config: Arc<Config>, state: &State) -> Result<()> {
        let (desired, notes) = Desired::of(config, &self.runtime.state);
        for note in notes {
            warn!("{note}");
        }
        self.reconciler.apply(desired, state)
    }

    /// Changes the runtime state (a `limit`, `upstream` verb) and puts it
    /// in force at once; if it cannot be, the change is undone.
    pub(super) fn change(&mut self, change: impl FnOnce(&mut RuntimeState)) -> Result<()> {
        let r = &self.runtime.state;
        let kept = (
            r.drained.clone(),
            r.weights.clone(),
            r.switches.clone(),
            r.limits.clone(),
        );
        change(&mut self.runtime.state);
        let (desired, _) = Desired::of(self.config.clone(), &self.runtime.state);
        let result = self.reconciler.apply(desired, &self.shared.load());
        if result.is_err() {
            let r = &mut self.runtime.state;
            (r.drained, r.weights, r.switches, r.limits) = kept;
            let (desired, _) = Desired::of(self.config.clone(), &self.runtime.state);
            if let Err(e) = self.reconciler.apply(desired, &self.shared.load()) {
                warn!("putting the runtime state back in force: {e:#}");
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        http::Services,
        state_file::{LimitOverride, RuntimeState},
    };

    const CONFIG: &str = "[filter]\nsyn = { rate = 100 }\n\n\
                          [limit.api]\nrate = \"10r/s\"\nburst = 20\n\n\
                          [upstream.blue]\nservers = [\"192.0.2.1:80\", \"192.0.2.2:80\"]\n\n\
                          [upstream.green]\nservers = [\"192.0.2.3:80\"]\n\n\
                          [[route]]\nupstream = \"blue\"\n";

    /// What a snapshot and the process's services hold after each apply:
    /// the runtime's values over the configuration's, and back when the
    /// runtime lets go of them.
    #[tokio::test]
    async fn puts_the_runtime_over_the_configuration_and_takes_it_back() {
        let config = Arc::new(Config::parse(CONFIG, "t.toml".as_ref()).unwrap());
        let services = Arc::new(Services::new(tokio::sync::mpsc::channel(1).0));
        let state = State::build(config.clone(), services.clone(), None);
        let mut r = Reconciler::new(None, services.gate.clone(), services.switches.clone());
        let in_force = |state: &State| {
            let blue = state.groups["blue"].backends();
            (
                services.gate.rate(),
                state.limiters["api"].rate(),
                (blue[1].drained(), blue[0].weight()),
                services.switches.get("blue"),
            )
        };
        r.apply(
            Desired::of(config.clone(), &RuntimeState::default()).0,
            &state,
        )
        .unwrap();
        assert_eq!(
            in_force(&state),
            (Some((100, 100)), 10_000, (false, 1), None)
        );

        let mut runtime = RuntimeState::default();
        let syn = LimitOverride {
            rate: Some("5".into()),
            burst: None,
        };
        runtime.limits.insert("syn".into(), syn);
        let api = LimitOverride {
            rate: Some("1r/s".into()),
            burst: Some(3),
        };
        runtime.limits.insert("api".into(), api);
        runtime.drained.push("blue/192.0.2.2:80".into());
        runtime.weights.insert("blue/192.0.2.1:80".into(), 7);
        runtime.switches.insert("blue".into(), "green".into());
        r.apply(Desired::of(config.clone(), &runtime).0, &state)
            .unwrap();
        assert_eq!(
            in_force(&state),
            (Some((5, 5)), 1000, (true, 7), Some("green".into()))
        );
        assert_eq!(state.limiters["api"].burst(), 3);

        // A new snapshot gets them before anyone sees it; letting go puts
        // the configuration's values back.
        let next = State::build(config.clone(), services.clone(), Some(&state));
        r.apply(Desired::of(config.clone(), &runtime).0, &next)
            .unwrap();
        assert_eq!(in_force(&next).2, (true, 7));
        r.apply(Desired::of(config, &RuntimeState::default()).0, &next)
            .unwrap();
        assert_eq!(
            in_force(&next),
            (Some((100, 100)), 10_000, (false, 1), None)
        );
        assert_eq!(next.limiters["api"].burst(), 20);
    }
}
