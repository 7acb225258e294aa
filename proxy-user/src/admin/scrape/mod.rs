//! `/metrics` in the Prometheus text format (version 0.0.4). Every metric is
//! listed, with its type, labels and meaning, in docs/metrics.md.

mod kernel;
mod upstreams;

use crate::metrics::{route::CLASSES, text::Text};
use crate::{config::FilterSettings, filter::FilterMaps, http::State};

/// Renders everything: the L7 tier from `state`, the kernel tier from its
/// pinned maps when the filter runs.
pub fn render(state: &State, kernel: Option<(&FilterMaps, &FilterSettings)>) -> String {
    let mut t = Text::default();
    listeners(&mut t, state);
    routes(&mut t, state);
    upstreams::render(&mut t, state);
    limits(&mut t, state);
    gate(&mut t, state);
    autobans(&mut t, state);
    fleet(&mut t, state);
    access_log(&mut t, state);
    state.services.metrics.reloads.render(&mut t);
    if let Some((maps, settings)) = kernel {
        kernel::render(&mut t, state, maps, settings);
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
    let all = state.services.metrics.listeners();
    let each = |t: &mut Text,
                name: &str,
                kind: &str,
                help: &str,
                f: &dyn Fn(&crate::metrics::ListenerMetrics) -> u64| {
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
        "TLS handshakes that failed, by reason (error, timeout, busy)",
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
        t.sample(
            "rampart_listener_tls_handshake_failures_total",
            &[("listener", bind), ("reason", "busy")],
            m.tls_shed.load(Relaxed),
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
    let routes: Vec<(String, std::sync::Arc<crate::metrics::RouteMetrics>)> = state
        .route_names()
        .into_iter()
        .map(|n| {
            let m = state.services.metrics.route(&n);
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
    t.sample(
        "rampart_gate_active",
        &[],
        u8::from(state.services.gate.active()),
    );
    t.family(
        "rampart_gate_connections_total",
        "counter",
        "connections decided by the userspace gate, by decision",
    );
    for (decision, n) in state.services.gate.counts() {
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
        state.services.gate.refused_behind_proxy(),
    );
}

fn autobans(t: &mut Text, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &state.services.metrics.autobans;
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

/// `rampart_fleet_*`, when this host is in a fleet.
fn fleet(t: &mut Text, state: &State) {
    if state.config.fleet.is_none() {
        return;
    }
    for (name, kind, help, samples) in state.services.metrics.fleet.families() {
        t.family(name, kind, help);
        for (label, v) in samples {
            match label {
                Some(l) => t.sample(name, &[l], v),
                None => t.sample(name, &[], v),
            }
        }
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

    /// Every metric `/metrics` emits (this file and the two it calls) is documented, and the shipped alert
    /// rules and dashboard only use metrics that exist.
    #[test]
    fn every_metric_is_documented_and_every_rule_uses_real_ones() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
        let emitted: BTreeSet<String> = names(
            &[
                include_str!("mod.rs"),
                include_str!("upstreams.rs"),
                include_str!("kernel.rs"),
            ]
            .concat(),
        )
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
