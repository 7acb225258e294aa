//! What every part of the simulation shares: a host's fleet settings, and
//! Redis's side of a run, read from `INFO` before and after.

use std::{net::IpAddr, time::Duration};

use proxy_user::config::FleetSettings;
use tests::redis::Redis;

/// The fleet's exchange period (`[fleet] exchange`, the default).
pub const PERIOD: Duration = Duration::from_millis(200);
/// The simulation's clock step.
pub const TICK: Duration = Duration::from_millis(10);

/// Host `host`'s `[fleet]` section: its own id, every host the same fleet.
pub fn settings(port: u16, name: &str, host: usize) -> FleetSettings {
    FleetSettings {
        host: "127.0.0.1".into(),
        port,
        user: None,
        password: None,
        name: name.into(),
        host_id: host_id(host),
        log_max: 100_000,
        timeout: Duration::from_secs(2),
        exchange: PERIOD,
        exchange_sources: proxy_user::config::fleet::DEFAULT_EXCHANGE_SOURCES,
        tls: None,
    }
}

pub fn host_id(host: usize) -> String {
    format!("h{host}")
}

/// A benign source of host `h`: distinct per host (ECMP keeps a client on
/// one host), in 10.0.0.0/8.
pub fn benign(h: usize, i: usize) -> IpAddr {
    let n = (h * 100_000 + i) as u32;
    IpAddr::from((0x0a00_0000 | n).to_be_bytes())
}

/// `INFO`'s counters that matter here.
#[derive(Clone, Copy, Debug, Default)]
pub struct Info {
    /// Every command Redis ran, those a script ran included.
    pub commands: u64,
    /// Script calls (`EVALSHA`, `EVAL`).
    pub scripts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub cpu_s: f64,
}

pub fn info(redis: &Redis) -> Info {
    let text = redis.cli(&["INFO", "all"]);
    let mut i = Info::default();
    for line in text.lines() {
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        let num = || v.trim().parse::<f64>().unwrap_or(0.0);
        match k {
            "total_net_input_bytes" => i.bytes_in = num() as u64,
            "total_net_output_bytes" => i.bytes_out = num() as u64,
            "used_cpu_sys" | "used_cpu_user" => i.cpu_s += num(),
            _ if k.starts_with("cmdstat_") && !k.starts_with("cmdstat_info") => {
                let calls = v
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|c| c.parse::<u64>().ok())
                    .unwrap_or(0);
                i.commands += calls;
                if k == "cmdstat_evalsha" || k == "cmdstat_eval" {
                    i.scripts += calls;
                }
            }
            _ => {}
        }
    }
    i
}

/// Redis's cost over a run of `elapsed` seconds with `hosts` hosts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub scripts_per_host: f64,
    pub commands_per_host: f64,
    /// All hosts together.
    pub commands: f64,
    pub in_per_host: f64,
    pub out_per_host: f64,
    /// Redis's CPU, in cores.
    pub cpu: f64,
}

impl Cost {
    pub fn between(before: Info, after: Info, hosts: usize, elapsed: f64) -> Cost {
        let per_host_s = |a: u64, b: u64| a.saturating_sub(b) as f64 / hosts as f64 / elapsed;
        Cost {
            scripts_per_host: per_host_s(after.scripts, before.scripts),
            commands_per_host: per_host_s(after.commands, before.commands),
            commands: after.commands.saturating_sub(before.commands) as f64 / elapsed,
            in_per_host: per_host_s(after.bytes_in, before.bytes_in),
            out_per_host: per_host_s(after.bytes_out, before.bytes_out),
            cpu: (after.cpu_s - before.cpu_s) / elapsed,
        }
    }
}

/// The `q` quantile of sorted `v` (0 when empty).
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i.min(v.len() - 1)]
}
