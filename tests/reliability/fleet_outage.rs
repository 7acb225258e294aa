//! The fleet when Redis fails (issue 18): two daemons keep enforcing and
//! serving while Redis is down, say so once, and when Redis comes back
//! empty republish their own entries; entries that are not entries
//! (malformed, oversize, wrongly shaped) are counted and skipped.

use std::time::{Duration, Instant};

use tests::redis::Redis;

use super::fleet_host::{FLEET, Host, root, wait_for};

#[test]
fn fleet_redis_lost_and_back_empty_every_host_keeps_enforcing_and_republishes() {
    if !tests::redis::available("fleet_redis_lost_and_back_empty") {
        return;
    }
    let root = root("loss");
    let mut redis = Redis::start(&root.0);
    let mut a = Host::new(&root.0, "a", redis.port);
    let mut b = Host::new(&root.0, "b", redis.port);
    a.start();
    b.start();
    a.ban("127.19.0.1", "before the outage", false);
    wait_for("B has A's ban", Duration::from_secs(2), || {
        b.banned("127.19.0.1")
    });

    // Slow: Redis stops answering (SIGSTOP) for 3 s. Nothing waits for it.
    // The slowest request over 3 s with Redis answering, then hung.
    let slowest = |what: &str| {
        let (start, mut worst, mut n) = (Instant::now(), Duration::ZERO, 0);
        while start.elapsed() < Duration::from_secs(3) {
            for h in [&a, &b] {
                let t = Instant::now();
                assert!(h.serves("127.19.1.1"), "a request failed {what}");
                worst = worst.max(t.elapsed());
                n += 1;
            }
        }
        (worst, n)
    };
    let (before, _) = slowest("with Redis up");
    redis.pause();
    a.ban("127.19.0.5", "while Redis hangs", false);
    assert!(
        !a.serves("127.19.0.5"),
        "A does not enforce its own ban at once"
    );
    let (during, n) = slowest("while Redis hung");
    redis.resume();
    let resumed = Instant::now();
    wait_for(
        "the ban made while Redis hung, on B",
        Duration::from_secs(5),
        || b.banned("127.19.0.5"),
    );
    super::support::figure(
        "fleet Redis hung 3 s",
        format!(
            "0 failed of {n}; slowest request {during:?} (3 s before, Redis up: {before:?}); \
             the ban made meanwhile on B {:?} after Redis answered",
            resumed.elapsed()
        ),
    );
    a.unban("127.19.0.5");
    wait_for("the removal on B", Duration::from_secs(2), || {
        !b.banned("127.19.0.5")
    });

    redis.kill();
    // Every host keeps enforcing, serves, and takes new bans at once.
    a.ban("127.19.0.2", "during the outage", false);
    assert!(
        !a.serves("127.19.0.2"),
        "A does not enforce its own ban without Redis"
    );
    let mut failed = 0;
    let requests = tests::scaled(100, 1000);
    for i in 0..requests {
        let h = if i % 2 == 0 { &a } else { &b };
        failed += usize::from(!h.serves("127.19.1.1"));
        assert!(!h.serves("127.19.0.1"), "a ban stopped being enforced");
    }
    assert_eq!(failed, 0, "requests failed while Redis was down");
    wait_for("rampart_fleet_up 0", Duration::from_secs(5), || {
        a.metric("rampart_fleet_up") == 0 && b.metric("rampart_fleet_up") == 0
    });
    // Said once per outage: the hang (if the 2 s command timeout passed)
    // and the kill are two.
    let down = a.log().matches("Redis unreachable").count();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        (1..=2).contains(&down),
        "the outage is said once:\n{}",
        a.log()
    );
    assert_eq!(
        a.log().matches("Redis unreachable").count(),
        down,
        "said again during the outage"
    );

    // Back, empty: A republishes both its bans, B gets the new one.
    redis.restart_empty();
    let back = Instant::now();
    let snap = format!("rampart:{{{FLEET}}}:snap");
    wait_for(
        "everything back in Redis and on B",
        Duration::from_secs(5),
        || redis.cli(&["HLEN", &snap]) == "2" && b.banned("127.19.0.2"),
    );
    let took = back.elapsed();
    super::support::figure(
        "fleet Redis restarted empty",
        format!("own entries republished and on every host in {took:?}"),
    );
    assert!(!b.serves("127.19.0.2"));
    assert!(a.metric("rampart_fleet_republished_total") >= 2);

    // Untrusted input: entries that are not entries are counted and skipped.
    let log = format!("rampart:{{{FLEET}}}:log");
    let big = "x".repeat(10_000);
    for args in [
        vec!["XADD", &log, "*", "e", "not json"],
        vec!["XADD", &log, "*", "e", &big],
        vec!["XADD", &log, "*", "x", "1", "y", "2"],
        vec![
            "XADD",
            &log,
            "*",
            "e",
            r#"{"op":"add","list":"block","cidr":"10.0.0.1/99","host":"z","origin":"cli"}"#,
        ],
    ] {
        assert!(!redis.cli(&args).is_empty());
    }
    a.ban("127.19.0.3", "after the junk", false);
    wait_for(
        "B has the ban after the junk",
        Duration::from_secs(2),
        || b.banned("127.19.0.3"),
    );
    assert_eq!(
        b.metric("rampart_fleet_skipped_total{reason=\"malformed\"}"),
        3
    );
    assert_eq!(
        b.metric("rampart_fleet_skipped_total{reason=\"oversize\"}"),
        1
    );
    assert!(b.serves("127.19.1.1"));
    assert!(!b.log().contains("panicked"));
}
