//! The values an operator or a file hands the daemon at runtime: a `--ttl`,
//! a `--rate` and a `--burst` through the real CLI grammar, then the control
//! request they become; and the rest of the input as a state file, through
//! the real reader and into the userspace gate's bans.
//!
//! Input: `TTL\nRATE\nBURST\nSTATE-FILE...` (missing lines are empty).
//!
//! Oracle (issue 13, item 9: no value may crash rampart):
//! - nothing panics (fuzz builds check arithmetic);
//! - a `--ttl` the CLI accepts is at most 365d, and the request it becomes
//!   passes the daemon's check; a `ttl_secs` the daemon accepts is 1..=365d;
//! - a `--rate` the CLI takes that parses is at most 1000000r/s; a `--burst`
//!   passes the daemon's check exactly when it is within the limit's maximum;
//! - a state file either is refused as a whole with a reason, or reads as a
//!   state whose JSON reads back the same, each skipped value named; its
//!   entries' expiries (any u64) become gate bans and deadlines without overflow.
#![no_main]

use std::{net::IpAddr, time::Instant};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use proxy_user::{
    cli::{Cli, LimitVerb, ListVerb, Object},
    config::units::{self, Rate},
    control_socket::protocol::{MAX_KERNEL_BURST, MAX_TTL_SECS, MAX_ZONE_BURST, Request},
    gate::Gate,
    later::{Later, unix_later},
    state_file::{ListName, RuntimeState, parse, unix_now},
};

fn ttl(text: &str) {
    let parsed = Cli::try_parse_from(["rampart", "block", "add", "192.0.2.1", "--ttl", text]);
    assert_eq!(
        parsed.is_ok(),
        units::duration(text).is_ok(),
        "the CLI and the units disagree on {text:?}"
    );
    if let Ok(Cli {
        object:
            Object::Block {
                verb: Some(ListVerb::Add { ttl: Some(d), cidr, .. }),
            },
        ..
    }) = parsed
    {
        assert!(d <= units::YEAR, "--ttl {text:?} gave {d:?}");
        let request = Request::ListAdd {
            list: ListName::Block,
            cidr,
            ttl_secs: Some(d.as_secs().max(1)),
            reason: None,
            local: false,
        };
        assert_eq!(request.check(), Ok(()), "--ttl {text:?}");
        let _ = Instant::now().later(d);
        let _ = unix_later(unix_now(), d);
    }
    if let Ok(n) = text.trim().parse::<u64>() {
        let request = Request::ListAdd {
            list: ListName::Block,
            cidr: "192.0.2.1".parse().unwrap(),
            ttl_secs: Some(n),
            reason: None,
            local: false,
        };
        assert_eq!(
            request.check().is_ok(),
            (1..=MAX_TTL_SECS).contains(&n),
            "ttl_secs {n}"
        );
    }
}

fn limit(rate: &str, burst: &str) {
    let parsed = Cli::try_parse_from([
        "rampart", "limit", "set", "api", "--rate", rate, "--burst", burst,
    ]);
    if let Ok(Cli {
        object:
            Object::Limit {
                verb: Some(LimitVerb::Set { rate, burst, .. }),
            },
        ..
    }) = parsed
    {
        if let Some(Ok(r)) = rate.as_deref().map(str::parse::<Rate>) {
            assert!(r.per_1000s <= units::MAX_RATE_PER_SEC * 1000, "{r:?}");
            let _ = r.to_string();
        }
        let b = burst.expect("--burst was given");
        for (name, max) in [("api", MAX_ZONE_BURST), ("syn", MAX_KERNEL_BURST)] {
            let request = Request::LimitSet {
                name: name.into(),
                rate: rate.clone(),
                burst: Some(b),
            };
            assert_eq!(request.check().is_ok(), b <= max, "{name} --burst {b}");
        }
    }
}

fn state_file(bytes: &[u8]) {
    let Ok((state, skipped)) = parse(bytes) else {
        return;
    };
    assert!(skipped.iter().all(|s| !s.trim().is_empty()));
    let text = serde_json::to_vec(&state).unwrap();
    let (back, none) = parse(&text).expect("a state reads back");
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(back, state);
    let gate = Gate::default();
    let now = unix_now();
    for e in state.entries.iter() {
        let remaining = e.remaining(now);
        let _ = e.expired(now);
        if let Some(d) = remaining {
            let _ = Instant::now().later(d);
        }
        let addr: IpAddr = e.cidr.addr();
        gate.ban(addr, remaining, 1);
    }
    let _ = gate.bans();
    let _ = gate.sweep_bans();
    let _ = RuntimeState::default();
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let mut line = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (t, r, b) = (line(), line(), line());
    ttl(&t);
    limit(&r, &b);
    state_file(parts.next().unwrap_or_default());
});
