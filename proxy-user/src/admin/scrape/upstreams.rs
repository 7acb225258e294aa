//! The upstream groups' part of `/metrics` (see [`super::render`]).

use crate::http::State;
use crate::metrics::{route::CLASSES, text::Text};

/// Each upstream group's and server's measures.
pub(super) fn render(t: &mut Text, state: &State) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = tokio::time::Instant::now();
    let servers: Vec<(String, String, std::sync::Arc<crate::upstream::Backend>)> = state
        .groups
        .iter()
        .flat_map(|(g, group)| {
            group
                .backends()
                .to_vec()
                .into_iter()
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
        "rampart_upstream_backup",
        "gauge",
        "1 for a backup server (used only while no primary of its group is up), 0 for a primary",
    );
    for (g, s, b) in &servers {
        t.sample(
            "rampart_upstream_backup",
            &[("group", g), ("server", s)],
            u64::from(b.backup),
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
