//! The fleet with XDP (issue 18): three daemons, each attached natively
//! to its own veth pair in its own namespace, sharing bans through a real
//! redis-server (`fleet_hosts`). A ban on host A is enforced by hosts B
//! and C's XDP programs: their kernel maps have it, and their client is
//! refused.

use std::time::{Duration, Instant};

use tests::{backend::curl_status, privilege::require_root};

use crate::fleet_hosts::{Edge, Spec, p50_max, three_hosts};

/// Every edge has this address; the namespaces are apart, so the three
/// client links share one subnet and the client addresses.
const EDGE: &str = "198.18.21.1";
const CLIENT: &str = "198.18.21.10";
const OTHER: &str = "198.18.21.11";

fn curl(e: &Edge, src: &str) -> String {
    curl_status(&e.link.client, src, &format!("http://{EDGE}:8080/"))
}

#[test]
fn fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps() {
    let name = "fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps";
    if !require_root(name) || !tests::redis::available(name) {
        return;
    }
    let t = three_hosts(
        "f18x",
        &Spec {
            fleet: "f18xdp",
            redis: crate::fleet_hosts::REDIS,
            edge: "198.18.21.1/24",
            clients: vec![format!("{CLIENT}/24"), format!("{OTHER}/24")],
            filter: "",
            listen: format!("{EDGE}:8080"),
        },
    );
    let [a, b, c] = &t.hosts;
    for e in [b, c] {
        assert_eq!(curl(e, CLIENT), "200");
    }

    // Bans of the client (and of addresses around it) issued on A, until
    // B's and C's kernel maps have each: one sample per host and ban.
    let mut took = Vec::new();
    for i in 0..20u32 {
        let addr = if i == 0 {
            CLIENT.to_string()
        } else {
            format!("198.18.21.{}", 100 + i)
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
        let mut at: [Option<Duration>; 2] = [None; 2];
        while at.iter().any(Option::is_none) {
            for (slot, e) in at.iter_mut().zip([b, c]) {
                if slot.is_some() {
                    continue;
                }
                let shown = e.ip_show(&addr);
                if !shown["ban"].is_null() {
                    assert_eq!(shown["enforced_in"], "kernel", "{shown}");
                    *slot = Some(start.elapsed());
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{addr} not in B's and C's maps: {at:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        took.extend(at.into_iter().flatten());
    }
    let (p50, max) = p50_max(&mut took);
    let p99 = took[(took.len() * 99).div_ceil(100) - 1];
    println!(
        "figure: fleet ban on A in B's and C's XDP maps (3 hosts, 20 bans, 40 samples, veth, \
         netns): p50 {p50:?}, p99 {p99:?}, max {max:?}"
    );
    assert!(p99 <= Duration::from_millis(500), "{took:?}");
    assert!(max <= Duration::from_secs(1), "{took:?}");
    // B's and C's programs drop the client now; another source passes.
    for e in [b, c] {
        assert_eq!(curl(e, CLIENT), "000");
        let ban = e.ban(CLIENT);
        assert_eq!(
            (ban["host"].as_str(), ban["reason"].as_str()),
            (Some("f18xa"), Some("xdp 0")),
            "{ban}"
        );
    }
    assert_eq!(curl(a, OTHER), "200");
}
