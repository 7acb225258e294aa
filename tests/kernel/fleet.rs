//! The fleet with XDP (issue 18): two daemons, each attached natively to
//! its own veth pair in its own namespace, sharing bans through a real
//! redis-server reached over a third veth pair. A ban on host A is
//! enforced by host B's XDP program: B's kernel maps have it, and B's
//! client is refused.

use std::time::{Duration, Instant};

use tests::{backend::curl_status, privilege::require_root, redis::Redis};

use crate::fleet_hosts::{Edge, Spec, join, start};

/// Where Redis listens, in A's namespace, reached from B's.
const REDIS_A: &str = "198.18.13.1";
const REDIS_B: &str = "198.18.13.2";

/// Host `host` with the edge address `addr` and one client, `client`.
fn edge(tag: &str, host: &str, addr: &str, client: &str) -> Edge {
    Edge::new(
        tag,
        host,
        &Spec {
            fleet: "f18xdp",
            redis: REDIS_A,
            edge: &format!("{addr}/24"),
            clients: vec![format!("{client}/24")],
            filter: "",
            listen: format!("{addr}:8080"),
        },
    )
}

fn curl(e: &Edge, addr: &str, src: &str) -> String {
    curl_status(&e.link.client, src, &format!("http://{addr}:8080/"))
}

#[test]
fn fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps() {
    if !require_root("fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps")
        || !tests::redis::available("fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps")
    {
        return;
    }
    let (a_addr, a_client) = ("198.18.11.1", "198.18.11.10");
    let (b_addr, b_client) = ("198.18.12.1", "198.18.12.10");
    let a = edge("f18xa", "xa", a_addr, a_client);
    let b = edge("f18xb", "xb", b_addr, b_client);
    // A third veth pair joins the two edges: Redis runs in A's namespace.
    join(
        &a,
        &b,
        ["f18r0", "f18r1"],
        &format!("{REDIS_A}/24"),
        &format!("{REDIS_B}/24"),
    );
    let _redis = Redis::in_netns(&a.dir, &a.link.edge, REDIS_A);
    let _daemons = start(&[&a, &b]);
    assert_eq!(curl(&b, b_addr, b_client), "200");

    // Bans of B's client (and of addresses around it) issued on A, until
    // B's kernel maps have each.
    let mut took = Vec::new();
    for i in 0..20u32 {
        let addr = if i == 0 {
            b_client.to_string()
        } else {
            format!("198.18.12.{}", 100 + i)
        };
        std::thread::sleep(Duration::from_millis(u64::from(i * 37 % 100)));
        let start = Instant::now();
        a.call(&proxy_user::control_socket::protocol::Request::ListAdd {
            list: proxy_user::state_file::ListName::Block,
            cidr: addr.parse().unwrap(),
            ttl_secs: Some(600),
            reason: Some(format!("xdp {i}")),
            local: false,
        });
        loop {
            let shown = b.ip_show(&addr);
            if !shown["ban"].is_null() {
                assert_eq!(shown["enforced_in"], "kernel", "{shown}");
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{addr} not in B's maps"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "figure: fleet ban on A in B's XDP maps (20 samples, veth, netns): p50 {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(took[took.len() - 1] <= Duration::from_secs(1));
    // B's program drops its client now; A's never saw it.
    assert_eq!(curl(&b, b_addr, b_client), "000");
    let ban = &b.ban(b_client);
    assert_eq!(
        (ban["host"].as_str(), ban["reason"].as_str()),
        (Some("xa"), Some("xdp 0")),
        "{ban}"
    );
    assert_eq!(curl(&a, a_addr, a_client), "200");
}
