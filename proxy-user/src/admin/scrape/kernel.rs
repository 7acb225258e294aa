//! The kernel tier's part of `/metrics` (see [`super::render`]), read from
//! the XDP filter's pinned maps at each scrape.

use proxy_common::stats::{VERDICT_NAMES, action};

use crate::metrics::text::Text;
use crate::{
    config::FilterSettings,
    filter::{FilterMaps, List, NewSourceMap, SynCookieMaps, origin_name, syn_mode_name},
    http::State,
};

/// The XDP filter's measures, read from its pinned maps.
pub(super) fn render(t: &mut Text, state: &State, maps: &FilterMaps, settings: &FilterSettings) {
    t.family(
        "rampart_xdp_attached",
        "gauge",
        "1 per interface the XDP program is attached to (label mode)",
    );
    for (iface, mode) in state.services.metrics.xdp() {
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
            "packets by verdict (per-CPU counters summed), with action drop, pass or answer",
        );
        for (i, c) in verdicts.iter().enumerate() {
            let action = action(i as u32);
            t.sample(
                "rampart_xdp_packets_total",
                &[("verdict", VERDICT_NAMES[i]), ("action", action)],
                c.packets,
            );
        }
        t.family("rampart_xdp_bytes_total", "counter", "bytes by verdict");
        for (i, c) in verdicts.iter().enumerate() {
            let action = action(i as u32);
            t.sample(
                "rampart_xdp_bytes_total",
                &[("verdict", VERDICT_NAMES[i]), ("action", action)],
                c.bytes,
            );
        }
    }
    syn_cookies(t, maps);
    new_sources(t, maps);
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

/// SYN cookies: whether they are being sent, and what came of them.
fn syn_cookies(t: &mut Text, maps: &FilterMaps) {
    let Ok(syn) = SynCookieMaps::open(maps.dir()) else {
        return;
    };
    if let (Ok(config), Ok(active)) = (syn.config(), syn.active(crate::filter::monotonic_ns())) {
        t.family(
            "rampart_xdp_syn_cookies_mode",
            "gauge",
            "1 for the SYN cookie mode in force (off when the host cannot run them)",
        );
        t.sample(
            "rampart_xdp_syn_cookies_mode",
            &[("mode", syn_mode_name(config.mode))],
            1,
        );
        t.family(
            "rampart_xdp_syn_cookies_active",
            "gauge",
            "1 while SYNs to protected ports are answered with cookies (mode on, or auto during a flood)",
        );
        t.sample("rampart_xdp_syn_cookies_active", &[], u8::from(active));
    }
    if let Ok(counters) = syn.stats() {
        t.family(
            "rampart_xdp_syn_cookie_events_total",
            "counter",
            "SYN cookie events: ACKs accepted or refused by the kernel, floods (auto mode switching on), SYNs left to the kernel, SYNs dropped over the SYN-ACK budget",
        );
        for (i, v) in counters.iter().enumerate() {
            t.sample(
                "rampart_xdp_syn_cookie_events_total",
                &[("event", proxy_common::syncookie::STAT_NAMES[i])],
                *v,
            );
        }
    }
}

/// The new-source budget and attack mode (what it dropped is the
/// `new_limited` verdict of `rampart_xdp_packets_total`).
fn new_sources(t: &mut Text, maps: &FilterMaps) {
    let Ok(value) = NewSourceMap::open(maps.dir()).and_then(|m| m.get()) else {
        return;
    };
    t.family(
        "rampart_xdp_new_sources_budget",
        "gauge",
        "new sources the kernel tier admits per second, all CPUs together (0: no budget)",
    );
    t.sample("rampart_xdp_new_sources_budget", &[], value.rate);
    t.family(
        "rampart_xdp_attack_mode",
        "gauge",
        "1 while the new-source budget is spent (and for its hold after): new sources are dropped, known ones pass",
    );
    t.sample(
        "rampart_xdp_attack_mode",
        &[],
        u8::from(value.attacking(crate::filter::monotonic_ns())),
    );
    t.family(
        "rampart_xdp_attacks_total",
        "counter",
        "times attack mode was entered",
    );
    t.sample("rampart_xdp_attacks_total", &[], value.attacks);
}
