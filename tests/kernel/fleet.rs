//! The fleet with XDP (issue 18): two daemons, each attached natively to
//! its own veth pair in its own namespace, sharing bans through a real
//! redis-server reached over a third veth pair. A ban on host A is
//! enforced by host B's XDP program: B's kernel maps have it, and B's
//! client is refused.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    backend::curl_status,
    daemon::{Daemon, control_section, filter_section},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
    redis::Redis,
};

/// Where Redis listens, in A's namespace, reached from B's.
const REDIS_A: &str = "198.18.13.1";
const REDIS_B: &str = "198.18.13.2";

struct Edge {
    link: Link,
    addr: &'static str,
    client: &'static str,
    dir: std::path::PathBuf,
    _pins: PinDir,
    config: std::path::PathBuf,
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Edge {
    fn new(tag: &str, host: &str, addr: &'static str, client: &'static str) -> Edge {
        let link = Link::new(tag);
        link.edge_addr(&format!("{addr}/24"));
        link.client_addr(&format!("{client}/24"));
        let dir = std::env::temp_dir().join(format!("rampart-f18-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pins = PinDir::new(tag);
        let config = dir.join("rampart.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n{}\n[admin]\nbind = \"off\"\n\n\
                 [fleet]\nredis = \"{REDIS_A}:6379\"\nname = \"f18xdp\"\nhost = \"{host}\"\n\n\
                 [[listener]]\nbind = \"{addr}:8080\"\n\n[[route]]\nrespond = 200\n",
                filter_section(&link.edge_if, pins.path(), &[]),
                control_section(&dir),
            ),
        )
        .unwrap();
        Edge {
            link,
            addr,
            client,
            dir,
            _pins: pins,
            config,
        }
    }

    fn call(&self, r: &proxy_user::control_socket::protocol::Request) -> Value {
        proxy_user::control_socket::client::call(&self.dir.join("control.sock"), r)
            .unwrap_or_else(|e| panic!("{r:?}: {e:#}"))
    }

    fn ip_show(&self, addr: &str) -> Value {
        self.call(&proxy_user::control_socket::protocol::Request::IpShow {
            addr: addr.parse().unwrap(),
        })
    }

    fn curl(&self, src: &str) -> String {
        curl_status(
            &self.link.client,
            src,
            &format!("http://{}:8080/", self.addr),
        )
    }
}

#[test]
fn fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps() {
    if !require_root("fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps")
        || !tests::redis::available("fleet_a_ban_on_one_host_reaches_the_other_hosts_xdp_maps")
    {
        return;
    }
    let a = Edge::new("f18xa", "xa", "198.18.11.1", "198.18.11.10");
    let b = Edge::new("f18xb", "xb", "198.18.12.1", "198.18.12.10");
    // A third veth pair joins the two edges: Redis runs in A's namespace.
    a.link.edge.ip(&[
        "link",
        "add",
        "f18r0",
        "type",
        "veth",
        "peer",
        "name",
        "f18r1",
        "netns",
        b.link.edge.name(),
    ]);
    a.link
        .edge
        .ip(&["addr", "add", &format!("{REDIS_A}/24"), "dev", "f18r0"]);
    b.link
        .edge
        .ip(&["addr", "add", &format!("{REDIS_B}/24"), "dev", "f18r1"]);
    a.link.edge.ip(&["link", "set", "f18r0", "up"]);
    b.link.edge.ip(&["link", "set", "f18r1", "up"]);
    let _redis = Redis::in_netns(&a.dir, &a.link.edge, REDIS_A);
    let _da = Daemon::start(&a.link.edge, &a.config, &a.link.edge_if);
    let _db = Daemon::start(&b.link.edge, &b.config, &b.link.edge_if);
    for (e, d) in [(&a, &_da), (&b, &_db)] {
        let deadline = Instant::now() + Duration::from_secs(10);
        while e.call(&proxy_user::control_socket::protocol::Request::FleetStatus)["health"] != "up"
        {
            assert!(Instant::now() < deadline, "fleet not up:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    assert_eq!(b.curl(b.client), "200");

    // Bans of B's client (and of addresses around it) issued on A, until
    // B's kernel maps have each.
    let mut took = Vec::new();
    for i in 0..20u32 {
        let addr = if i == 0 {
            b.client.to_string()
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
    assert_eq!(b.curl(b.client), "000");
    let ban = &b.ip_show(b.client)["ban"];
    assert_eq!(
        (ban["host"].as_str(), ban["reason"].as_str()),
        (Some("xa"), Some("xdp 0")),
        "{ban}"
    );
    assert_eq!(a.curl(a.client), "200");
}
