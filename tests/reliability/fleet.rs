//! The fleet (issue 18): three `rampart` daemons and a real redis-server
//! on loopback, the userspace gate enforcing (no `[filter]` interfaces), so
//! what is checked is what a connection from a banned source gets on
//! another host. Figures: propagation latency from the ban on one host to
//! its enforcement on the others; time for everything to be back after
//! Redis returns empty.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use proxy_user::{control_socket::protocol::Request, state_file::ListName};
use serde_json::Value;
use tests::{daemon::rampart_bin, redis::Redis};

use super::fleet_host::{FLEET, Host, get_path, root, wait_for};

/// The command categories docs/fleet.md's deployment grants the fleet's user.
const ACL: &str = "+@read +@write +@stream +@hash +@string +@scripting +@connection -@dangerous";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[test]
fn fleet_a_ban_on_one_host_is_enforced_on_the_others_and_a_returning_host_catches_up() {
    if !tests::redis::available("fleet_a_ban_on_one_host_is_enforced_on_the_others") {
        return;
    }
    let root = root("share");
    // As deployed (docs/fleet.md): an ACL user limited to the fleet's
    // keys and the command categories it needs; `default` off.
    let acl = format!("~rampart:{{{FLEET}}}:* {ACL}");
    let redis = Redis::with_acl(&root.0, "rampart", "f18-secret", &acl);
    std::fs::write(root.0.join("redis.pass"), "f18-secret\n").unwrap();
    let auth = format!(
        "user = \"rampart\"\npassword_file = \"{}\"\n",
        root.0.join("redis.pass").display()
    );
    let mut hosts: Vec<Host> = ["a", "b", "c"]
        .into_iter()
        .map(|n| Host::with_auth(&root.0, n, redis.port, &auth))
        .collect();
    for h in &mut hosts {
        h.start();
    }
    let [a, b, c] = &mut hosts[..] else {
        unreachable!()
    };

    // Propagation: each ban on A, until B and C enforce it.
    let n = tests::scaled(40, 200);
    let mut took = Vec::new();
    let mut jitter: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 1..=n {
        let addr = format!("127.18.{}.{}", 1 + i / 250, 1 + i % 250);
        // Bans at random moments, not in step with the hosts' log reads.
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        std::thread::sleep(Duration::from_millis(jitter % 100));
        let start = Instant::now();
        a.ban(&addr, &format!("latency {i}"), false);
        let (mut on_b, mut on_c) = (None, None);
        while on_b.is_none() || on_c.is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{addr} not on B and C in 5 s"
            );
            if on_b.is_none() && b.banned(&addr) {
                on_b = Some(start.elapsed());
            }
            if on_c.is_none() && c.banned(&addr) {
                on_c = Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        took.extend([on_b.unwrap(), on_c.unwrap()]);
    }
    took.sort();
    let (p50, p99, max) = (
        percentile(&took, 0.5),
        percentile(&took, 0.99),
        took[took.len() - 1],
    );
    super::support::figure(
        "fleet ban propagation A -> B, C",
        format!(
            "{} samples, userspace gate, 100 ms log poll: p50 {p50:?}, p99 {p99:?}, max {max:?}",
            took.len()
        ),
    );
    assert!(p99 <= Duration::from_millis(500), "p99 {p99:?}");
    assert!(max <= Duration::from_secs(1), "max {max:?}");

    // `rampart fleet status`, as an operator reads it: every host heard from.
    let out = Command::new(rampart_bin())
        .args(["-j", "-c"])
        .arg(&b.config)
        .args(["fleet", "status"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fleet status -j: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        (status["host"].as_str(), status["health"].as_str()),
        (Some("b"), Some("up")),
        "{status}"
    );
    let heard: Vec<&str> = status["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["last_heard_ms"].as_u64().is_some_and(|ms| ms < 3000))
        .filter_map(|h| h["host"].as_str())
        .collect();
    assert_eq!(heard, ["a", "b", "c"], "{status}");
    let table = Command::new(rampart_bin())
        .arg("-c")
        .arg(&b.config)
        .args(["fleet", "status"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with(&format!(
            "fleet {FLEET} as host b: Redis 127.0.0.1:{} up",
            redis.port
        )),
        "{table}"
    );

    // Enforced where it was not issued, and `ip show` says who and why.
    let first = "127.18.1.2";
    assert!(!c.serves(first), "C serves a source banned on A");
    assert!(c.serves("127.18.200.9"), "C refuses an unbanned source");
    let ban = c.ban_of(first);
    assert_eq!(
        (ban["host"].as_str(), ban["origin"].as_str()),
        (Some("a"), Some("cli")),
        "{ban}"
    );
    assert_eq!(ban["reason"], "latency 1");

    // A removal on B (of A's entry) reaches A and C.
    b.unban(first);
    wait_for("the removal on A and C", Duration::from_secs(2), || {
        !a.banned(first) && !c.banned(first)
    });
    assert!(c.serves(first));

    // Escalation on A (a scanner's 404s) bans on every host, with its evidence.
    let scanner = "127.18.150.1";
    for _ in 0..5 {
        let _ = get_path(a.port, scanner, "/.env");
    }
    wait_for("A's escalation ban", Duration::from_secs(3), || {
        a.banned(scanner)
    });
    wait_for(
        "A's escalation ban on B and C",
        Duration::from_secs(3),
        || b.banned(scanner) && c.banned(scanner),
    );
    let ban = c.ban_of(scanner);
    assert_eq!(
        (ban["host"].as_str(), ban["origin"].as_str()),
        (Some("a"), Some("auto-ban")),
        "{ban}"
    );
    assert!(
        ban["reason"]
            .as_str()
            .is_some_and(|r| r.contains("scanners")),
        "{ban}"
    );
    assert!(!b.serves(scanner));

    // Expiries are wall-clock on every host, and the expired entry leaves
    // the snapshot (its host removes it at its next heartbeat).
    let brief = "127.18.160.1";
    a.call(&Request::ListAdd {
        list: ListName::Block,
        cidr: brief.parse().unwrap(),
        ttl_secs: Some(2),
        reason: Some("brief".into()),
        local: false,
    });
    wait_for("the brief ban on C", Duration::from_secs(2), || {
        c.banned(brief)
    });
    let field = format!("block|{brief}");
    let snap = format!("rampart:{{{FLEET}}}:snap");
    let in_snapshot = || {
        redis.cli(&[
            "--user",
            "rampart",
            "--pass",
            "f18-secret",
            "HEXISTS",
            &snap,
            &field,
        ])
    };
    assert_eq!(in_snapshot(), "1");
    wait_for(
        "the brief ban expired everywhere and out of the snapshot",
        Duration::from_secs(6),
        || !a.banned(brief) && !b.banned(brief) && !c.banned(brief) && in_snapshot() == "0",
    );

    // `--local` stays on its host.
    a.ban("127.18.100.1", "only here", true);
    std::thread::sleep(Duration::from_millis(600));
    assert!(a.banned("127.18.100.1"));
    assert!(!b.banned("127.18.100.1") && !c.banned("127.18.100.1"));

    // C away: bans and a removal meanwhile; back, it catches up from its
    // position in the log (the state file keeps it).
    c.stop();
    let missed: Vec<String> = (1..=5).map(|i| format!("127.18.101.{i}")).collect();
    for m in &missed {
        a.ban(m, "while C was away", false);
    }
    a.unban("127.18.1.3");
    c.start();
    wait_for("C catching up", Duration::from_secs(3), || {
        missed.iter().all(|m| c.banned(m)) && !c.banned("127.18.1.3")
    });
    assert!(!c.serves(&missed[0]));
    assert_eq!(c.metric("rampart_fleet_resyncs_total{from=\"log\"}"), 1);
    assert_eq!(
        c.metric("rampart_fleet_resyncs_total{from=\"snapshot\"}"),
        0
    );

    // C away longer than the log keeps (trimmed empty here): the snapshot
    // brings what is in force, and what was removed meanwhile goes.
    c.stop();
    a.ban("127.18.102.1", "after the trim", false);
    b.unban("127.18.1.4");
    let log = format!("rampart:{{{FLEET}}}:log");
    let trimmed = redis.cli(&[
        "--user",
        "rampart",
        "--pass",
        "f18-secret",
        "XTRIM",
        &log,
        "MAXLEN",
        "0",
    ]);
    assert!(
        trimmed.parse::<u64>().is_ok_and(|n| n > 0),
        "XTRIM: {trimmed}"
    );
    c.start();
    wait_for("C reading the snapshot", Duration::from_secs(3), || {
        c.banned("127.18.102.1") && !c.banned("127.18.1.4") && c.banned("127.18.1.5")
    });
    assert_eq!(
        c.metric("rampart_fleet_resyncs_total{from=\"snapshot\"}"),
        1
    );
    assert!(!c.banned("127.18.100.1"), "A's --local ban reached C");
    for h in [&*a, &*b, &*c] {
        let log = h.log();
        assert!(!log.contains("panicked"), "{log}");
        // Redis was there throughout: no command of the fleet's failed.
        assert!(!log.contains("Redis unreachable"), "{log}");
    }
}
