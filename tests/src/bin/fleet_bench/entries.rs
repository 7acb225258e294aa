//! The shared entries' path: bans issued at `rate` a second over the whole
//! fleet (host after host), each published by its host's fleet task and
//! received by every other host's. Measures Redis's cost per host (the
//! log read every 100 ms and the heartbeat a second are most of it) and
//! the propagation delay: from the ban's `publish` on its host to its
//! arrival in each other host's main loop.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use proxy_user::cidr::Cidr;
use tests::redis::Redis;

use crate::{
    common::{Cost, info, quantile},
    hosts::Hosts,
};

pub struct Row {
    pub hosts: usize,
    pub rate: f64,
    pub issued: usize,
    /// (ban, other host) pairs that arrived, of `issued x (hosts - 1)`.
    pub arrived: usize,
    pub cost: Cost,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// The `i`th ban's address, in 100.64.0.0/10.
fn banned(i: usize) -> Cidr {
    Cidr::host(Ipv4Addr::from(0x6440_0000 | (i as u32 & 0x003f_ffff)).into())
}

pub async fn simulate(redis: &Redis, hosts: usize, rate: f64, secs: u64) -> Row {
    let fleet = Hosts::start(redis.port, &format!("entries{hosts}x{rate}"), hosts).await;
    let every = Duration::from_secs_f64(1.0 / rate);
    let n = (rate * secs as f64) as usize;
    let mut issued = Vec::with_capacity(n);
    let before = info(redis);
    let start = Instant::now();
    let t0 = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(t0 + every * i as u32).await;
        let cidr = banned(i);
        let reason = format!("escalate.login: 20 responses 401/403 on api within 10s ({i})");
        fleet.ban(i % hosts, cidr, reason);
        issued.push((i % hosts, cidr));
    }
    tokio::time::sleep_until(t0 + Duration::from_secs(secs)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let after = info(redis);
    // Stragglers: the last bans' way to every host.
    let deadline = Instant::now() + Duration::from_secs(3);
    let expected = n * (hosts - 1);
    while Instant::now() < deadline && (*fleet.received.lock().unwrap() as usize) < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays = Vec::with_capacity(expected);
    for (origin, cidr) in &issued {
        let at = fleet.enforced(cidr);
        let Some(t) = at[*origin] else { continue };
        for (h, a) in at.iter().enumerate() {
            if let (true, Some(a)) = (h != *origin, a) {
                delays.push(a.saturating_duration_since(t));
            }
        }
    }
    delays.sort();
    fleet.stop().await;
    Row {
        hosts,
        rate,
        issued: n,
        arrived: delays.len(),
        cost: Cost::between(before, after, hosts, elapsed),
        p50: quantile(&delays, 0.5),
        p99: quantile(&delays, 0.99),
        max: delays.last().copied().unwrap_or_default(),
    }
}
