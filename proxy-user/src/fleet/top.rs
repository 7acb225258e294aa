//! `rampart top --fleet`: the heaviest sources of the whole fleet, read
//! from the fleet's counts in Redis ([`super::counts`]): for each counter
//! this host's configuration holds fleet-wide (`[limit.NAME] fleet = true`,
//! `[escalate.NAME] fleet = true`, `[filter] fleet_pps` and `fleet_syn`), the sources with
//! the highest totals in the current and the previous 10 s window.
//!
//! Read by the CLI straight from Redis (as `rampart top` reads the pinned
//! map), so it works while the daemon is down and never adds Redis work to
//! the daemon. Two `ZREVRANGE ... WITHSCORES` per counter, each at most
//! [`MAX_ROWS`] members. What comes back is untrusted: a member that is not
//! an address or a score that is not a count is counted and skipped.

use std::{collections::HashMap, net::IpAddr};

use redis::aio::ConnectionManager;
use serde::Serialize;

use super::{
    FleetError,
    counts::{WINDOW_MS, score},
    store,
};
use crate::config::{Config, FleetSettings};

/// Most sources read per counter and window.
pub const MAX_ROWS: usize = 10_000;

/// One counter the fleet keeps: its key and what it allows a source.
#[derive(Clone, Debug, PartialEq)]
pub struct Counter {
    /// `kernel:pps`, `kernel:syn`, `limit:NAME`, `escalate:NAME`.
    pub key: String,
    /// What it counts (packets, SYNs, requests, responses).
    pub unit: &'static str,
    /// What it allows one source per second, fleet-wide (`None`: no rate).
    pub allowed_per_s: f64,
}

/// The fleet-wide counters of a configuration.
pub fn counters(config: &Config) -> Vec<Counter> {
    let mut out = Vec::new();
    if let Some(f) = config.filter.as_ref() {
        for (t, counter, unit) in [
            (f.fleet_pps, super::kernel::Counter::Packets, "packets"),
            (f.fleet_syn, super::kernel::Counter::Syns, "SYNs"),
        ] {
            if let Some(t) = t {
                out.push(Counter {
                    key: counter.key().into(),
                    unit,
                    allowed_per_s: t.count as f64 / t.within.as_secs_f64(),
                });
            }
        }
    }
    for (name, z) in config.limits.iter().filter(|(_, z)| z.fleet) {
        out.push(Counter {
            key: format!("limit:{name}"),
            unit: "requests",
            allowed_per_s: z.rate.per_second(),
        });
    }
    for (name, r) in config.escalate.iter().filter(|(_, r)| r.fleet) {
        out.push(Counter {
            key: format!("escalate:{name}"),
            unit: "responses",
            allowed_per_s: r.count as f64 / r.within.as_secs_f64(),
        });
    }
    out
}

/// One source of one counter, fleet-wide.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub source: IpAddr,
    pub counter: String,
    pub unit: &'static str,
    /// Counted in the current window so far.
    pub window: u64,
    /// Counted in the previous (whole) window.
    pub previous: u64,
    /// Per second over the previous window and the current one so far.
    pub per_s: f64,
    /// `per_s` over what the counter allows a source (1.0 = at the limit).
    pub of_allowed: f64,
}

/// What `top --fleet` shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FleetTop {
    pub fleet: String,
    /// Seconds into the current window.
    pub window_s: f64,
    pub rows: Vec<Row>,
    /// Members or scores read back that were not usable.
    pub skipped: u64,
}

/// Reads the fleet's heaviest sources of every counter, at most `n` in all,
/// heaviest relative to what each counter allows first.
pub async fn read(
    settings: &FleetSettings,
    counters: &[Counter],
    n: usize,
) -> Result<FleetTop, FleetError> {
    let mut con = store::connect(settings)?;
    let now = store::now_ms();
    let window = now / WINDOW_MS;
    let mut top = FleetTop {
        fleet: settings.name.clone(),
        window_s: (now % WINDOW_MS) as f64 / 1000.0,
        ..FleetTop::default()
    };
    let read_n = n.clamp(1, MAX_ROWS);
    for c in counters {
        let mut sets = [Vec::new(), Vec::new()];
        for (set, w) in sets.iter_mut().zip([window, window.saturating_sub(1)]) {
            let key = format!("rampart:{{{}}}:count:{}:{w}", settings.name, c.key);
            *set = zrevrange(&mut con, &key, read_n).await?;
        }
        let [current, previous] = sets;
        top.skipped += merge(&mut top, c, &current, &previous);
    }
    top.rows.sort_by(|a, b| {
        b.of_allowed
            .total_cmp(&a.of_allowed)
            .then(b.per_s.total_cmp(&a.per_s))
    });
    top.rows.truncate(n);
    Ok(top)
}

async fn zrevrange(
    con: &mut ConnectionManager,
    key: &str,
    n: usize,
) -> Result<Vec<String>, FleetError> {
    let reply: Vec<String> = redis::cmd("ZREVRANGE")
        .arg(key)
        .arg(0)
        .arg(n - 1)
        .arg("WITHSCORES")
        .query_async(con)
        .await?;
    Ok(reply)
}

/// Adds one counter's rows from its two windows' `member, score` pairs;
/// how many pairs were skipped as unusable.
fn merge(top: &mut FleetTop, c: &Counter, current: &[String], previous: &[String]) -> u64 {
    let mut skipped = 0;
    let mut by_source: HashMap<IpAddr, (u64, u64)> = HashMap::new();
    for (pairs, slot) in [(current, 0), (previous, 1)] {
        for pair in pairs.chunks(2) {
            let parsed = match pair {
                [m, s] if m.len() <= 45 => m.parse::<IpAddr>().ok().zip(score(s)),
                _ => None,
            };
            let Some((ip, n)) = parsed else {
                skipped += 1;
                continue;
            };
            let counts = by_source.entry(ip).or_default();
            if slot == 0 {
                counts.0 = n;
            } else {
                counts.1 = n;
            }
        }
    }
    let secs = top.window_s + WINDOW_MS as f64 / 1000.0;
    for (source, (window, previous)) in by_source {
        let per_s = (window + previous) as f64 / secs;
        top.rows.push(Row {
            source,
            counter: c.key.clone(),
            unit: c.unit,
            window,
            previous,
            per_s,
            of_allowed: if c.allowed_per_s > 0.0 {
                per_s / c.allowed_per_s
            } else {
                0.0
            },
        });
    }
    skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Counter {
        Counter {
            key: "kernel:pps".into(),
            unit: "packets",
            allowed_per_s: 100.0,
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn both_windows_add_up_and_junk_is_counted_and_skipped() {
        let mut top = FleetTop {
            window_s: 5.0,
            ..FleetTop::default()
        };
        let current = s(&["192.0.2.1", "600", "not-an-ip", "5", "192.0.2.2", "-3"]);
        let previous = s(&[
            "192.0.2.1",
            "900",
            &"1".repeat(60),
            "1",
            "2001:db8::",
            "15",
            "odd",
        ]);
        let skipped = merge(&mut top, &counter(), &current, &previous);
        assert_eq!(skipped, 4);
        top.rows.sort_by(|a, b| b.per_s.total_cmp(&a.per_s));
        let first = &top.rows[0];
        assert_eq!(
            (first.source.to_string(), first.window, first.previous),
            ("192.0.2.1".into(), 600, 900)
        );
        // 1,500 over 15 s against 100 a second: at the limit.
        assert!((first.per_s - 100.0).abs() < 1e-9 && (first.of_allowed - 1.0).abs() < 1e-9);
        assert_eq!(top.rows[1].source.to_string(), "2001:db8::");
        assert_eq!(top.rows.len(), 2);
    }

    #[test]
    fn the_counters_are_those_the_configuration_holds_fleet_wide() {
        let text = "[fleet]\nredis = \"r\"\nname = \"e\"\n\
                    [filter]\nfleet_pps = { count = 50000, within = \"10s\", ban = \"10m\" }\n\
                    fleet_syn = { count = 600, within = \"1m\", ban = \"10m\" }\n\
                    [limit.api]\nrate = \"100r/s\"\nfleet = true\n\
                    [limit.local]\nrate = \"5r/s\"\n\
                    [escalate.scan]\nstatuses = [404]\ncount = 60\nwithin = \"1m\"\nban = \"1h\"\nfleet = true\n";
        let config = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let got: Vec<(String, f64)> = counters(&config)
            .into_iter()
            .map(|c| (c.key, c.allowed_per_s))
            .collect();
        assert_eq!(
            got,
            vec![
                ("kernel:pps".into(), 5000.0),
                ("kernel:syn".into(), 10.0),
                ("limit:api".into(), 100.0),
                ("escalate:scan".into(), 1.0)
            ]
        );
    }
}
