//! Balancing and passive health of a group (`super`).

use std::time::Duration;

use super::*;
use crate::config::{Balance, Server};

fn group(n: u16, max_fails: u32) -> Group {
    Group::new(Upstream {
        name: "app".into(),
        servers: (0..n)
            .map(|i| Server {
                addr: Address::Fixed(Target::Tcp(
                    format!("127.0.0.1:{}", 8001 + i).parse().unwrap(),
                )),
                weight: 1,
                backup: false,
            })
            .collect(),
        balance: Balance::LeastConn,
        max_fails,
        fail_timeout: Duration::from_secs(30),
        keepalive: 4,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        send_timeout: Duration::from_secs(1),
        retries: 1,
        health_check: None,
        resolve_interval: None,
    })
}

#[tokio::test(start_paused = true)]
async fn leases_count_in_flight_requests() {
    let g = group(2, 3);
    let now = Instant::now();
    let a = g.pick(&[], now).unwrap();
    let b = g.pick(&[], now).unwrap();
    assert_ne!(a.id(), b.id(), "least_conn spreads two requests");
    let c = g.pick(&[], now).unwrap();
    assert_eq!(c.backend.active(), 2);
    drop((a, b, c));
    assert!(g.backends().iter().all(|b| b.active() == 0));
}

#[tokio::test(start_paused = true)]
async fn max_fails_within_fail_timeout_takes_a_server_out_for_fail_timeout() {
    let g = group(2, 3);
    let t0 = Instant::now();
    let b = g.backends();
    for _ in 0..2 {
        g.failed(&b[0], t0);
    }
    assert!(b[0].available(t0), "two failures of three");
    g.failed(&b[0], t0 + Duration::from_secs(1));
    assert!(!b[0].available(t0 + Duration::from_secs(2)));
    assert!(
        Arc::ptr_eq(
            &g.pick(&[], t0 + Duration::from_secs(2)).unwrap().backend,
            &b[1]
        ),
        "only the healthy one"
    );
    assert!(
        b[0].available(t0 + Duration::from_secs(32)),
        "back after fail_timeout"
    );
    // Failures spread wider than fail_timeout do not add up.
    g.failed(&b[1], t0);
    g.failed(&b[1], t0 + Duration::from_secs(31));
    g.failed(&b[1], t0 + Duration::from_secs(62));
    assert!(b[1].available(t0 + Duration::from_secs(63)));
}

#[test]
fn retries_are_budgeted_at_a_fifth_of_requests() {
    let g = group(2, 1);
    // The reserve: ten retries.
    assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
    // Then one retry per five requests.
    for _ in 0..50 {
        g.earn_retry();
    }
    assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
    // Never more saved than the reserve.
    for _ in 0..1000 {
        g.earn_retry();
    }
    assert_eq!((0..20).filter(|_| g.spend_retry()).count(), 10);
}

#[tokio::test(start_paused = true)]
async fn backups_stand_in_only_when_no_primary_is_available() {
    let mut config = group(4, 1).config.clone();
    config.servers[2].backup = true;
    config.servers[3].backup = true;
    let g = Group::new(config);
    let b = g.backends();
    let now = Instant::now();
    // least_conn among the primaries only, however loaded they are.
    let leases: Vec<Lease> = (0..6).map(|_| g.pick(&[], now).unwrap()).collect();
    assert!(leases.iter().all(|l| !l.backend.backup), "primaries only");
    assert_eq!((b[0].active(), b[1].active()), (3, 3));
    drop(leases);
    // One primary down: the other takes everything.
    g.failed(&b[0], now);
    assert!(Arc::ptr_eq(&g.pick(&[], now).unwrap().backend, &b[1]));
    // Both down: least_conn among the backups.
    g.failed(&b[1], now);
    let l1 = g.pick(&[], now).unwrap();
    let l2 = g.pick(&[], now).unwrap();
    assert!(l1.backend.backup && l2.backend.backup);
    assert_ne!(l1.id(), l2.id(), "backups share the load");
    // A primary back after fail_timeout: the backups get nothing new.
    let later = now + Duration::from_secs(31);
    assert!(!g.pick(&[], later).unwrap().backend.backup);
    // A request that has tried every primary moves on to a backup.
    let primaries: Vec<usize> = b[..2].iter().map(|b| Arc::as_ptr(b) as usize).collect();
    assert!(g.pick(&primaries, later).unwrap().backend.backup);
}

#[tokio::test(start_paused = true)]
async fn no_available_server_gives_none() {
    let g = group(1, 1);
    let now = Instant::now();
    g.failed(&g.backends()[0], now);
    assert!(g.pick(&[], now).is_none());
    let g = group(2, 1);
    let tried: Vec<usize> = g
        .backends()
        .iter()
        .map(|b| Arc::as_ptr(b) as usize)
        .collect();
    assert!(g.pick(&tried, now).is_none(), "all tried");
}
