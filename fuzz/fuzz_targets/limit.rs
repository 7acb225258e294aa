//! The request limiter (`proxy_user::limit`) against the leaky-bucket model
//! ([`rampart_fuzz::bucket`]) on a fuzzed sequence of events.
//!
//! Input: per zone (one or two on the route) 8 bytes of settings, then
//! events of 3 bytes `[kind|key, value lo, value hi]`:
//! kinds 0-4 a request from client `key` after `value` ms, 5 the same after
//! `value` minutes, 6 `rampart limit set` on a zone (rate `value` r/s, a
//! burst that may be huge: the CLI takes any u64), 7 `limit reset`.
//! Time runs on tokio's paused clock, so "now" is exactly what the input says.
//!
//! Oracle, after every event: the same decision (pass, the same delay, or a
//! rejection with the same status and Retry-After) as the model; the same
//! counters; the same number of clients tracked, never more than
//! `max_clients`; and no panic (arithmetic overflow panics in fuzz builds).
#![no_main]

use std::{net::IpAddr, sync::LazyLock, time::Duration};

use libfuzzer_sys::fuzz_target;
use proxy_user::{
    config::{LimitZone, units::Rate},
    limit::{self, Decision, Limiter},
};
use rampart_fuzz::bucket::{self, Outcome, Spec, Zone};

static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("tokio runtime")
});

/// Largest `N` in `Nr/s` the configuration accepts.
const MAX_N: u64 = proxy_user::config::units::MAX_RATE_PER_SEC;

/// A zone's settings from 8 bytes, as the configuration could give them.
fn zone(b: &[u8]) -> LimitZone {
    // Rates: a mantissa shifted left, so small and enormous rates are both common.
    let n = ((u64::from(u16::from_le_bytes([b[1], b[2]])) + 1) << (b[0] >> 1) % 48).min(MAX_N);
    let rate: Rate = if b[0] & 1 == 0 {
        format!("{n}r/s")
    } else {
        format!("{n}r/m")
    }
    .parse()
    .unwrap_or(Rate { per_1000s: 1 });
    let v = u16::from_le_bytes([b[3], b[4]]);
    let burst = if v & 0x8000 != 0 {
        u64::from(v & 0x7fff) * 30
    } else {
        u64::from(v % 64)
    };
    let delay_after = match b[5] % 3 {
        0 => 0,
        1 => burst, // nodelay
        _ => u64::from(b[5] >> 2) % (burst + 1),
    };
    LimitZone {
        name: "z".into(),
        rate,
        burst,
        delay_after,
        dry_run: b[6] & 1 != 0,
        status: 400 + u16::from(b[6] >> 1) % 200,
        max_clients: 1 + usize::from(b[7] % 16),
        fleet: false,
    }
}

fn spec(z: &LimitZone) -> Spec {
    Spec {
        rate: z.rate.per_1000s,
        burst: z.burst,
        delay_after: z.delay_after,
        dry_run: z.dry_run,
        status: z.status,
        max_clients: z.max_clients,
    }
}

/// Client `key`: 16 IPv4 and 16 IPv6 addresses.
fn client(key: u8) -> IpAddr {
    let k = key & 0x1f;
    if k < 16 {
        IpAddr::from([192, 0, 2, k])
    } else {
        IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(k)])
    }
}

fn same(real: Decision, model: Outcome) -> bool {
    match (real, model) {
        (Decision::Pass, Outcome::Pass) => true,
        (Decision::Delay(d), Outcome::DelayMs(ms)) => d.as_millis() == ms,
        (
            Decision::Reject {
                status,
                retry_after_s,
            },
            Outcome::Reject {
                status: s,
                retry_after_s: r,
            },
        ) => status == s && u128::from(retry_after_s) == r,
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let n_zones = 1 + usize::from(first & 1);
    if rest.len() < 8 * n_zones {
        return;
    }
    let (settings, events) = rest.split_at(8 * n_zones);
    let zones: Vec<LimitZone> = settings.chunks(8).map(zone).collect();

    let _clock = RT.enter();
    let start = tokio::time::Instant::now();
    let real: Vec<Limiter> = zones.iter().cloned().map(Limiter::new).collect();
    let refs: Vec<&Limiter> = real.iter().collect();
    let mut model: Vec<Zone> = zones.iter().map(|z| Zone::new(spec(z))).collect();
    let mut now_ms: u64 = 0;

    for (i, e) in events.chunks_exact(3).enumerate() {
        let (kind, key) = (e[0] >> 5, e[0] & 0x1f);
        let value = u16::from_le_bytes([e[1], e[2]]);
        match kind {
            0..=5 => {
                let step = if kind == 5 { 60_000 } else { 1 };
                now_ms += u64::from(value) * step;
                let ip = client(key);
                let now = start + Duration::from_millis(now_ms);
                let got = limit::check(&refs, ip, now);
                let want = bucket::check(&mut model, ip, now_ms);
                assert!(
                    same(got, want),
                    "event {i}: {ip} at {now_ms} ms: limiter {got:?}, model {want:?}"
                );
            }
            6 => {
                let z = usize::from(key & 1) % n_zones;
                let rate = (value != 0).then(|| Rate {
                    per_1000s: u64::from(value) * 1000,
                });
                // Any u64, as `rampart limit set NAME --burst N` accepts.
                let burst = (value & 0xff != 0).then(|| u64::from(value) << (key >> 1) * 4);
                let zone = &real[z].zone;
                real[z].set(rate.unwrap_or(zone.rate), burst.unwrap_or(zone.burst));
                model[z].set(rate.map(|r| r.per_1000s), burst);
            }
            _ => {
                let z = usize::from(key & 1) % n_zones;
                real[z].set(real[z].zone.rate, real[z].zone.burst);
                model[z].set(None, None);
            }
        }
        for (z, (r, m)) in real.iter().zip(&model).enumerate() {
            assert_eq!(r.clients(), m.clients(), "event {i}: clients of zone {z}");
            assert!(r.clients() <= r.zone.max_clients, "zone {z} over capacity");
            let counts: Vec<u64> = r
                .counts
                .iter()
                .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
                .collect();
            assert_eq!(counts, m.counts, "event {i}: counters of zone {z}");
        }
    }
});
