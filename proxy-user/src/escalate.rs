//! Escalation from L7 to the kernel: per rule and source, the responses a
//! route's `[escalate.NAME]` rules watch are counted in a window that opens
//! with the first one; a source that passes the rule's count is reported
//! once per window, and the daemon bans it in the kernel (unless the
//! allowlist covers it) with the rule and the evidence as the reason.
//!
//! Memory is bounded: each rule tracks at most [`MAX_SOURCES`] sources, and
//! makes room by forgetting closed windows first, then the oldest eighth.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::mpsc::{Sender, error::TrySendError},
    time::Instant,
};

use crate::{
    config::{EscalateRule, Route},
    counted::Counted,
    metrics::autoban::AutoBanMetrics,
};

/// Sources tracked per rule.
pub const MAX_SOURCES: usize = 100_000;

/// Reports waiting for the daemon's main loop. Past it a report is dropped
/// and counted (the source is reported again on its next counted
/// response), so a flood of rotating sources cannot grow the queue.
pub const QUEUE: usize = 4096;

/// Where reports go: the daemon's queue, and what counts the ones it
/// drops. Made once by the daemon, for every configuration's rules.
#[derive(Clone, Debug)]
pub struct Sink {
    pub queue: Sender<AutoBan>,
    pub metrics: Arc<AutoBanMetrics>,
}

/// A source that passed a rule: what the daemon bans, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoBan {
    pub addr: IpAddr,
    pub rule: String,
    /// Responses counted in the window.
    pub count: u64,
    pub statuses: Vec<u16>,
    pub route: String,
    pub within: Duration,
    pub ttl: Duration,
}

impl AutoBan {
    /// The reason recorded with the ban (shown by `block list` and `ip show`).
    pub fn reason(&self) -> String {
        if self.statuses.is_empty() {
            // A kernel-tier threshold (`[filter] fleet_pps`: packets,
            // `fleet_syn`: SYNs).
            let what = if self.rule == "filter.fleet_syn" {
                "SYNs"
            } else {
                "packets"
            };
            return format!(
                "{}: {} {what} on {} within {}s",
                self.rule,
                self.count,
                self.route,
                self.within.as_secs()
            );
        }
        let statuses: Vec<String> = self.statuses.iter().map(u16::to_string).collect();
        format!(
            "escalate.{}: {} responses {} on {} within {}s",
            self.rule,
            self.count,
            statuses.join("/"),
            self.route,
            self.within.as_secs()
        )
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u64,
    reported: bool,
    /// Responses counted here since the fleet was last told (`fleet = true`).
    unreported: u32,
}

#[derive(Debug)]
pub(crate) struct RuleState {
    rule: EscalateRule,
    sources: Mutex<HashMap<IpAddr, Window>>,
}

/// Every rule's counters, and where reports go.
#[derive(Debug)]
pub struct Escalation {
    rules: BTreeMap<String, Arc<RuleState>>,
    sink: Sink,
}

impl Escalation {
    /// The rules of a configuration, reporting to `sink`; unchanged rules
    /// keep their counters from `previous`.
    pub fn new(
        rules: &BTreeMap<String, EscalateRule>,
        previous: Option<&Escalation>,
        sink: Sink,
    ) -> Escalation {
        let rules = rules
            .iter()
            .map(|(name, rule)| {
                let kept = previous
                    .and_then(|p| p.rules.get(name))
                    .filter(|r| r.rule == *rule)
                    .cloned();
                let state = kept.unwrap_or_else(|| Arc::new(RuleState::new(rule.clone())));
                (name.clone(), state)
            })
            .collect();
        Escalation { rules, sink }
    }

    /// Counts a response of `route` to `addr`.
    pub fn observe(&self, route: &Route, addr: IpAddr, status: u16, now: Instant) {
        for name in &route.escalate {
            let Some(r) = self.rules.get(name) else {
                continue;
            };
            if !r.rule.statuses.contains(&status) {
                continue;
            }
            if let Some(report) = r.count(addr, now) {
                let ban = AutoBan {
                    addr,
                    rule: name.clone(),
                    count: report,
                    statuses: r.rule.statuses.clone(),
                    route: route.name(),
                    within: r.rule.within,
                    ttl: r.rule.ban,
                };
                // The daemon logs the ban it makes (or, when it cannot keep
                // up, one summary per interval): no line per source here.
                log::debug!("{addr}: {}; banning for {:?}", ban.reason(), ban.ttl);
                // A queue of [`QUEUE`]: what it cannot take is counted.
                match self.sink.queue.try_send(ban) {
                    Ok(()) | Err(TrySendError::Closed(_)) => {}
                    Err(TrySendError::Full(_)) => {
                        AutoBanMetrics::add(&self.sink.metrics.dropped, 1);
                        r.unreport(addr);
                    }
                }
            }
        }
    }
}

impl Escalation {
    /// The rules counted fleet-wide (`fleet = true`), for the fleet's
    /// exchange of counts (fleet/counts.rs).
    pub fn fleet_rules(&self) -> Vec<Arc<dyn Counted>> {
        self.rules
            .iter()
            .filter(|(_, r)| r.rule.fleet)
            .map(|(name, r)| {
                Arc::new(FleetRule {
                    name: name.clone(),
                    state: r.clone(),
                    sink: self.sink.clone(),
                }) as Arc<dyn Counted>
            })
            .collect()
    }
}

/// A `fleet = true` rule as the fleet's exchange sees it: what this host
/// counted goes out; what the others counted comes in, and may pass the
/// rule here (the ban is then shared with the whole fleet).
struct FleetRule {
    name: String,
    state: Arc<RuleState>,
    sink: Sink,
}

impl Counted for FleetRule {
    fn key(&self) -> String {
        format!("escalate:{}", self.name)
    }

    fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        self.state.take_unreported(max)
    }

    fn charge(&self, addr: IpAddr, n: u64, now: Instant) {
        self.state.charge(&self.name, &self.sink, addr, n, now);
    }

    /// A tenth of the rule's count.
    fn heavy(&self) -> u64 {
        (self.state.rule.count / 10).max(1)
    }
}

impl RuleState {
    /// A rule's counters, empty.
    pub(crate) fn new(rule: EscalateRule) -> RuleState {
        RuleState {
            rule,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// The sources counted here since the fleet was last told (at most
    /// `max`, the busiest), as told now.
    pub(crate) fn take_unreported(&self, max: usize) -> Vec<(IpAddr, u32)> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(IpAddr, u32)> = sources
            .iter()
            .filter(|(_, w)| w.unreported > 0)
            .map(|(ip, w)| (*ip, w.unreported))
            .collect();
        if out.len() > max {
            out.select_nth_unstable_by(max, |a, b| b.1.cmp(&a.1));
            out.truncate(max);
        }
        for (ip, _) in &out {
            if let Some(w) = sources.get_mut(ip) {
                w.unreported = 0;
            }
        }
        out
    }

    /// Counts `n` for `addr` (`own`: on this host, so the fleet is told),
    /// and reports a ban to `sink` when that passes the rule.
    pub(crate) fn count_and_report(
        &self,
        name: &str,
        sink: &Sink,
        addr: IpAddr,
        n: u64,
        own: bool,
        now: Instant,
    ) {
        let Some(count) = self.add(addr, n, own, now) else {
            return;
        };
        let rule = &self.rule;
        let ban = AutoBan {
            addr,
            rule: name.to_string(),
            count,
            statuses: rule.statuses.clone(),
            route: "the fleet".into(),
            within: rule.within,
            ttl: rule.ban,
        };
        if let Err(TrySendError::Full(_)) = sink.queue.try_send(ban) {
            AutoBanMetrics::add(&sink.metrics.dropped, 1);
            self.unreport(addr);
        }
    }

    /// `n` more counted on other hosts for `addr`.
    fn charge(&self, name: &str, sink: &Sink, addr: IpAddr, n: u64, now: Instant) {
        self.count_and_report(name, sink, addr, n, false, now);
    }

    /// Forgets that `addr`'s window was reported, so the next counted
    /// response reports it again (its report was dropped).
    fn unreport(&self, addr: IpAddr) {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = sources.get_mut(&addr) {
            w.reported = false;
        }
    }

    /// Counts one response; `Some(count)` the first time the window passes the rule.
    fn count(&self, addr: IpAddr, now: Instant) -> Option<u64> {
        self.add(addr, 1, self.rule.fleet, now)
    }

    /// Counts `n` responses (`own`: here, so the fleet is told of them).
    fn add(&self, addr: IpAddr, n: u64, own: bool, now: Instant) -> Option<u64> {
        let mut sources = self.sources.lock().unwrap_or_else(|p| p.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&addr) {
            let within = self.rule.within;
            sources.retain(|_, w| now.duration_since(w.start) < within);
            if sources.len() >= MAX_SOURCES {
                let mut by_age: Vec<(Instant, IpAddr)> =
                    sources.iter().map(|(ip, w)| (w.start, *ip)).collect();
                by_age.sort_unstable();
                for (_, ip) in by_age.iter().take(sources.len() / 8 + 1) {
                    sources.remove(ip);
                }
            }
        }
        let fresh = Window {
            start: now,
            count: 0,
            reported: false,
            unreported: 0,
        };
        let w = sources.entry(addr).or_insert(fresh);
        if now.duration_since(w.start) >= self.rule.within {
            // What the fleet was not told yet still counts there.
            let unreported = w.unreported;
            *w = Window {
                start: now,
                count: 0,
                reported: false,
                unreported,
            };
        }
        w.count = w.count.saturating_add(n);
        if own {
            w.unreported = w
                .unreported
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
        }
        if w.count > self.rule.count && !w.reported {
            w.reported = true;
            return Some(w.count);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(count: u64) -> RuleState {
        RuleState {
            rule: EscalateRule {
                name: "r".into(),
                statuses: vec![429],
                count,
                within: Duration::from_secs(60),
                ban: Duration::from_secs(600),
                fleet: false,
            },
            sources: Mutex::new(HashMap::new()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn reports_once_when_the_count_is_passed_within_the_window() {
        let r = rule(3);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.count(a, now), None);
        }
        assert_eq!(r.count(b, now), None, "other sources count apart");
        assert_eq!(r.count(a, now), Some(4), "the 4th passes a count of 3");
        assert_eq!(r.count(a, now), None, "reported once per window");
        // A new window starts from zero.
        tokio::time::advance(Duration::from_secs(61)).await;
        let later = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.count(a, later), None);
        }
        assert_eq!(r.count(a, later), Some(4));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_sources_never_pass() {
        let r = rule(3);
        let a = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(r.count(a, Instant::now()), None);
            tokio::time::advance(Duration::from_secs(30)).await;
        }
    }

    #[test]
    fn memory_is_bounded() {
        let r = rule(1000);
        let now = Instant::now();
        for i in 0..(MAX_SOURCES as u32 + 10) {
            r.count(IpAddr::from(i.to_be_bytes()), now);
        }
        assert!(r.sources.lock().unwrap().len() <= MAX_SOURCES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_rule_reports_its_counts_and_bans_on_the_fleets() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let mut state = rule(6);
        state.rule.fleet = true;
        let r = FleetRule {
            name: "r".into(),
            state: Arc::new(state),
            sink: Sink {
                queue: tx,
                metrics: Default::default(),
            },
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(r.state.count(a, now), None);
        }
        assert_eq!(r.take_unreported(10), [(a, 3)]);
        assert!(r.take_unreported(10).is_empty(), "told once");
        // Others counted 3: 6 is not more than 6; one more is.
        r.charge(a, 3, now);
        assert!(rx.try_recv().is_err());
        r.charge(a, 1, now);
        let ban = rx.try_recv().unwrap();
        assert_eq!((ban.addr, ban.count), (a, 7));
        assert!(
            ban.reason().contains("7 responses 429 on the fleet"),
            "{}",
            ban.reason()
        );
        // Charges are not this host's to report.
        assert!(r.take_unreported(10).is_empty());
    }
}
