//! `/metrics` in the Prometheus text format (version 0.0.4). Every metric is
//! listed, with its type, labels and meaning, in docs/metrics.md.

use std::{fmt::Display, fmt::Write};

use proxy_common::stats::{VERDICT_NAMES, is_drop};

use super::{histogram::BOUNDS, histogram::Snapshot, route::CLASSES};
use crate::{
    config::FilterSettings,
    daemon::origin_name,
    filter::{FilterMaps, List},
    http::State,
};

/// The exposition text being written.
#[derive(Default)]
pub struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Snapshot) {
        let mut cumulative = 0;
        for (i, n) in h.buckets.iter().enumerate() {
            cumulative += n;
            let le = BOUNDS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&format!("{name}_bucket"), &l, cumulative);
        }
        self.sample(&format!("{name}_sum"), labels, h.sum_seconds);
        self.sample(&format!("{name}_count"), labels, h.count);
    }

    pub fn finish(self) -> String {
        self.0
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders everything: the L7 tier from `state`, the kernel tier from its
/// pinned maps when the filter runs.
pub fn render(state: &State, kernel: Option<(&FilterMaps, &FilterSettings)>) -> String {
    let mut t = Text::default();
    listeners(&mut t, state);
    routes(&mut t, state);
    upstreams(&mut t, state);
    limits(&mut t, state);
    gate(&mut t, state);
    autobans(&mut t, state);
    access_log(&mut t, state);
    if let Some((maps, settings)) = kernel {
        kernel_tier(&mut t, state, maps, settings);
    } else {
        t.family(
            "rampart_xdp_attached",
            "gauge",
            "1 per interface the XDP program is attached to (label mode)",
        );
    }
    t.finish()
}

fn listeners(t: &mut Text, state: &State) {
    let all = state.metrics.listeners();
    let each = |t: &mut Text,
                name: &str,
                kind: &str,
                help: &str,
                f: &dyn Fn(&super::ListenerMetrics) -> u64| {
        t.family(name, kind, help);
        for (bind, m) in &all {
            t.sample(name, &[("listener", bind)], f(m));
        }
    };
    use std::sync::atomic::Ordering::Relaxed;
    each(
        t,
        "rampart_listener_connections_accepted_total",
        "counter",
        "connections accepted",
        &|m| m.accepted.load(Relaxed),
    );
    t.family(
        "rampart_listener_connections_active",
        "gauge",
        "connections open now",
    );
    for (bind, m) in &all {
        t.sample(
            "rampart_listener_connections_active",
            &[("listener", bind)],
            m.active(),
        );
    }
    t.family(
        "rampart_listener_connections_waiting",
        "gauge",
        "open connections holding no HTTP state: parked between requests, or a head still arriving",
    );
    for (bind, m) in &all {
        t.sample(
            "rampart_listener_connections_waiting",
            &[("listener", bind)],
            m.waiting_now(),
        );
    }
    each(
        t,
        "rampart_listener_connections_refused_total",
        "counter",
        "connections closed at accept by the userspace gate (no XDP)",
        &|m| m.refused.load(Relaxed),
    );
    each(
        t,
        "rampart_listener_tls_handshakes_total",
        "counter",
        "TLS handshakes completed",
        &|m| m.tls_handshakes.load(Relaxed),
    );
    t.family(
        "rampart_listener_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, by reason (error, timeout)",
    );
    for (bind, m) in &all {
        t.sample(
            "rampart_listener_tls_handshake_failures_total",
            &[("listener", bind), ("reason", "error")],
            m.tls_failed.load(Relaxed),
        );
        t.sample(
            "rampart_listener_tls_handshake_failures_total",
            &[("listener", bind), ("reason", "timeout")],
            m.tls_timed_out.load(Relaxed),
        );
    }
    t.family(
        "rampart_listener_backlog",
        "gauge",
        "connections waiting in the kernel's accept queues of the listener's sockets",
    );
    let backlogs: Vec<(String, (u64, u64))> = all
        .iter()
        .map(|(bind, m)| (bind.clone(), m.backlog()))
        .collect();
    for (bind, (now, _)) in &backlogs {
        t.sample("rampart_listener_backlog", &[("listener", bind)], now);
    }
    t.family(
        "rampart_listener_backlog_max",
        "gauge",
        "capacity of the listener's accept queues (backlog, summed over the workers' sockets)",
    );
    for (bind, (_, max)) in &backlogs {
        t.sample("rampart_listener_backlog_max", &[("listener", bind)], max);
    }
}

fn routes(t: &mut Text, state: &State) {
    let routes: Vec<(String, std::sync::Arc<super::RouteMetrics>)> = state
        .route_names()
        .into_iter()
        .map(|n| {
            let m = state.metrics.route(&n);
            (n, m)
        })
        .collect();
    t.family(
        "rampart_route_requests_total",
        "counter",
        "requests answered, by route and status class",
    );
    for (name, m) in &routes {
        let totals = m.totals();
        for (class, n) in CLASSES.iter().zip(totals.classes) {
            t.sample(
                "rampart_route_requests_total",
                &[("route", name), ("class", class)],
                n,
            );
        }
    }
    t.family(
        "rampart_route_request_duration_seconds",
        "histogram",
        "time from the request head to the response head, by route",
    );
    for (name, m) in &routes {
        t.histogram(
            "rampart_route_request_duration_seconds",
            &[("route", name)],
            &m.total.snapshot(),
        );
    }
    t.family(
        "rampart_route_upstream_duration_seconds",
        "histogram",
        "time from sending to an upstream to its response head, by route",
    );
    for (name, m) in &routes {
        t.histogram(
            "rampart_route_upstream_duration_seconds",
            &[("route", name)],
            &m.upstream.snapshot(),
        );
    }
    t.family(
        "rampart_route_received_bytes_total",
        "counter",
        "request body bytes received, by route",
    );
    for (name, m) in &routes {
        t.sample(
            "rampart_route_received_bytes_total",
            &[("route", name)],
            m.totals().bytes_in,
        );
    }
    t.family(
        "rampart_route_sent_bytes_total",
        "counter",
        "response body bytes sent (declared lengths), by route",
    );
    for (name, m) in &routes {
        t.sample(
            "rampart_route_sent_bytes_total",
            &[("route", name)],
            m.totals().bytes_out,
        );
    }
}

fn upstreams(t: &mut Text, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = tokio::time::Instant::now();
    let servers: Vec<(String, String, &std::sync::Arc<crate::upstream::Backend>)> = state
        .groups
        .iter()
        .flat_map(|(g, group)| {
            group
                .backends
                .iter()
                .map(move |b| (g.clone(), b.addr.to_string(), b))
        })
        .collect();
    t.family(
        "rampart_upstream_requests_total",
        "counter",
        "requests sent to a server",
    );
    for (g, s, b) in &servers {
        t.sample(
            "rampart_upstream_requests_total",
            &[("group", g), ("server", s)],
            b.requests.load(Relaxed),
        );
    }
    t.family(
        "rampart_upstream_failures_total",
        "counter",
        "failed exchanges with a server (connect errors, timeouts, 502-504)",
    );
    for (g, s, b) in &servers {
        t.sample(
            "rampart_upstream_failures_total",
            &[("group", g), ("server", s)],
            b.failures.load(Relaxed),
        );
    }
    t.family(
        "rampart_upstream_in_flight",
        "gauge",
        "requests in flight to a server",
    );
    for (g, s, b) in &servers {
        t.sample(
            "rampart_upstream_in_flight",
            &[("group", g), ("server", s)],
            b.active(),
        );
    }
    t.family(
        "rampart_upstream_state",
        "gauge",
        "1 for the server's state: up, down (failed or failing health checks) or drained",
    );
    for (g, s, b) in &servers {
        t.sample(
            "rampart_upstream_state",
            &[("group", g), ("server", s), ("state", b.state(now))],
            1,
        );
    }
    t.family(
        "rampart_upstream_responses_total",
        "counter",
        "responses from a server, by status class",
    );
    for (g, s, b) in &servers {
        let totals = b.responses.totals();
        for (class, n) in CLASSES.iter().zip(totals.classes) {
            t.sample(
                "rampart_upstream_responses_total",
                &[("group", g), ("server", s), ("class", class)],
                n,
            );
        }
    }
    t.family(
        "rampart_upstream_response_duration_seconds",
        "histogram",
        "time from sending to a server to its response head",
    );
    for (g, s, b) in &servers {
        t.histogram(
            "rampart_upstream_response_duration_seconds",
            &[("group", g), ("server", s)],
            &b.responses.total.snapshot(),
        );
    }
    t.family(
        "rampart_upstream_retries_total",
        "counter",
        "requests retried on another server of the group",
    );
    for (g, group) in &state.groups {
        t.sample(
            "rampart_upstream_retries_total",
            &[("group", g)],
            group.retries.load(Relaxed),
        );
    }
}

fn limits(t: &mut Text, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    t.family(
        "rampart_limit_requests_total",
        "counter",
        "requests through a [limit.NAME] zone, by outcome (passed, delayed, rejected, dry_run)",
    );
    for (name, l) in &state.limiters {
        for (i, outcome) in ["passed", "delayed", "rejected", "dry_run"]
            .iter()
            .enumerate()
        {
            t.sample(
                "rampart_limit_requests_total",
                &[("zone", name), ("outcome", outcome)],
                l.counts[i].load(Relaxed),
            );
        }
    }
}

fn gate(t: &mut Text, state: &State) {
    t.family(
        "rampart_gate_active",
        "gauge",
        "1 when the userspace gate enforces (XDP is not running)",
    );
    t.sample("rampart_gate_active", &[], u8::from(state.gate.active()));
    t.family(
        "rampart_gate_connections_total",
        "counter",
        "connections decided by the userspace gate, by decision",
    );
    for (decision, n) in state.gate.counts() {
        t.sample(
            "rampart_gate_connections_total",
            &[("decision", decision)],
            n,
        );
    }
    t.family(
        "rampart_real_ip_refused_total",
        "counter",
        "requests refused with 403 because the client a trusted proxy named is banned or blocklisted",
    );
    t.sample(
        "rampart_real_ip_refused_total",
        &[],
        state.gate.refused_behind_proxy(),
    );
}

fn autobans(t: &mut Text, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &state.metrics.autobans;
    t.family(
        "rampart_autobans",
        "gauge",
        "escalation bans in force (bounded by [filter.maps] autobans)",
    );
    t.sample("rampart_autobans", &[], m.active.load(Relaxed));
    for (name, help, v) in [
        (
            "rampart_autobans_made_total",
            "escalation bans made",
            &m.made,
        ),
        (
            "rampart_autobans_evicted_total",
            "escalation bans lifted early, soonest-expiring first, to make room at the bound",
            &m.evicted,
        ),
        (
            "rampart_autobans_failed_total",
            "escalation bans the kernel maps or the gate refused",
            &m.failed,
        ),
        (
            "rampart_escalation_reports_dropped_total",
            "escalation reports dropped because the daemon's queue was full",
            &m.dropped,
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &[], v.load(Relaxed));
    }
}

fn access_log(t: &mut Text, state: &State) {
    let Some(log) = &state.access_log else {
        return;
    };
    t.family(
        "rampart_access_log_failing",
        "gauge",
        "1 while writing the access log fails (disk full, file gone); serving goes on",
    );
    t.sample(
        "rampart_access_log_failing",
        &[],
        u8::from(log.failing.load(std::sync::atomic::Ordering::Relaxed)),
    );
    t.family(
        "rampart_access_log_dropped_lines_total",
        "counter",
        "access log lines dropped because the writer fell behind or could not write",
    );
    t.sample(
        "rampart_access_log_dropped_lines_total",
        &[],
        log.dropped.load(std::sync::atomic::Ordering::Relaxed),
    );
}

fn kernel_tier(t: &mut Text, state: &State, maps: &FilterMaps, settings: &FilterSettings) {
    t.family(
        "rampart_xdp_attached",
        "gauge",
        "1 per interface the XDP program is attached to (label mode)",
    );
    for (iface, mode) in state.metrics.xdp() {
        t.sample(
            "rampart_xdp_attached",
            &[("interface", &iface), ("mode", &mode)],
            1,
        );
    }
    if let Ok(verdicts) = maps.verdicts() {
        t.family(
            "rampart_xdp_packets_total",
            "counter",
            "packets by verdict (per-CPU counters summed), with action drop or pass",
        );
        for (i, c) in verdicts.iter().enumerate() {
            let action = if is_drop(i as u32) { "drop" } else { "pass" };
            t.sample(
                "rampart_xdp_packets_total",
                &[("verdict", VERDICT_NAMES[i]), ("action", action)],
                c.packets,
            );
        }
        t.family("rampart_xdp_bytes_total", "counter", "bytes by verdict");
        for (i, c) in verdicts.iter().enumerate() {
            let action = if is_drop(i as u32) { "drop" } else { "pass" };
            t.sample(
                "rampart_xdp_bytes_total",
                &[("verdict", VERDICT_NAMES[i]), ("action", action)],
                c.bytes,
            );
        }
    }
    let m = &settings.maps;
    let count = |list: List| maps.entries(list).map_or(0, |e| e.len());
    let bans = maps.bans().unwrap_or_default();
    let sources = maps.sources().map_or(0, |s| s.len());
    t.family(
        "rampart_map_entries",
        "gauge",
        "entries in a kernel map (both families)",
    );
    t.family(
        "rampart_map_capacity",
        "gauge",
        "capacity of a kernel map (both families)",
    );
    for (name, entries, capacity) in [
        ("allow", count(List::Allow), m.allow * 2),
        (
            "block",
            count(List::Block),
            (m.block_ranges + m.block_addrs) * 2,
        ),
        ("bans", bans.len(), m.bans * 2),
        ("sources", sources, m.sources * 2),
    ] {
        t.sample("rampart_map_entries", &[("map", name)], entries);
        t.sample("rampart_map_capacity", &[("map", name)], capacity);
    }
    t.family(
        "rampart_bans_active",
        "gauge",
        "bans in force, by origin (config, cli, auto-ban)",
    );
    for origin in [
        proxy_common::list::ORIGIN_CLI,
        proxy_common::list::ORIGIN_ESCALATION,
    ] {
        let n = bans
            .iter()
            .filter(|b| b.origin == origin && b.remaining != Some(std::time::Duration::ZERO))
            .count();
        t.sample("rampart_bans_active", &[("origin", origin_name(origin))], n);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    fn names(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("rampart_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()))
                .unwrap_or(tail.len());
            out.insert(tail[..end].trim_end_matches('_').to_string());
            rest = &tail[end..];
        }
        out
    }

    /// Every metric this file emits is documented, and the shipped alert
    /// rules and dashboard only use metrics that exist.
    #[test]
    fn every_metric_is_documented_and_every_rule_uses_real_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
        let emitted: BTreeSet<String> = names(include_str!("render.rs"))
            .into_iter()
            .filter(|n| n.matches('_').count() >= 2)
            .collect();
        assert!(emitted.len() > 25, "{emitted:?}");
        for name in &emitted {
            assert!(
                docs.contains(&format!("`{name}`")),
                "{name} is not in docs/metrics.md"
            );
        }
        for file in [
            "packaging/monitoring/rampart-alerts.yml",
            "packaging/monitoring/grafana-dashboard.json",
        ] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            for used in names(&text) {
                let family = used.trim_end_matches("_bucket").to_string();
                assert!(
                    emitted.contains(&family),
                    "{file} uses {used}, which rampart does not export"
                );
            }
        }
    }
}
