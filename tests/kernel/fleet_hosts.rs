//! The set-up the fleet's XDP tests share (issue 18): hosts that are
//! daemons with XDP attached natively to a veth pair in a namespace of
//! their own, joined to each other by more veth pairs, and one real
//! redis-server in the first host's namespace.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use proxy_user::control_socket::protocol::Request;
use serde_json::Value;
use tests::{
    daemon::{Daemon, control_section, filter_section},
    netns::Link,
    pins::PinDir,
    redis::Redis,
    traffic::inject,
};

/// Redis, in A's namespace on A's end of the A-B pair ([`three_hosts`]).
pub const REDIS: &str = "198.18.22.1";

/// What makes one host.
pub struct Spec<'a> {
    /// The fleet's name (Redis keys).
    pub fleet: &'a str,
    /// Where Redis listens, as this host reaches it.
    pub redis: &'a str,
    /// The edge's address on its client link (CIDR).
    pub edge: &'a str,
    /// Addresses of the client end (CIDR).
    pub clients: Vec<String>,
    /// Lines added to `[filter]` (thresholds).
    pub filter: &'a str,
    /// Where the HTTP listener binds.
    pub listen: String,
}

/// One host: its link, its directory (config, control socket, state
/// file), its pins. The directory goes on drop.
pub struct Edge {
    pub link: Link,
    pub dir: tests::scratch::Scratch,
    _pins: PinDir,
    pub config: PathBuf,
}

impl Edge {
    /// Host `host` as `spec` says, its namespaces and pins named by `tag`.
    pub fn new(tag: &str, host: &str, spec: &Spec) -> Edge {
        let link = Link::new(tag);
        link.edge_addr(spec.edge);
        for c in &spec.clients {
            link.client_addr(c);
        }
        let dir = tests::scratch::Scratch::new(&format!("f18-{tag}"));
        let pins = PinDir::new(tag);
        let config = dir.join("rampart.toml");
        std::fs::write(
            &config,
            format!(
                "{}{}\n{}\n[admin]\nbind = \"off\"\n\n\
                 [fleet]\nredis = \"{}:6379\"\nname = \"{}\"\nhost = \"{host}\"\n\n\
                 [[listener]]\nbind = \"{}\"\n\n[[route]]\nrespond = 200\n",
                filter_section(&link.edge_if, pins.path(), &[]),
                spec.filter,
                control_section(&dir),
                spec.redis,
                spec.fleet,
                spec.listen,
            ),
        )
        .unwrap();
        Edge {
            link,
            dir,
            _pins: pins,
            config,
        }
    }

    pub fn call(&self, r: &Request) -> Value {
        proxy_user::control_socket::client::call(&self.dir.join("control.sock"), r)
            .unwrap_or_else(|e| panic!("{r:?}: {e:#}"))
    }

    pub fn ip_show(&self, addr: &str) -> Value {
        self.call(&Request::IpShow {
            addr: addr.parse().unwrap(),
        })
    }

    /// `n` copies of `frame` put on the client end of the link, in bursts
    /// of 64 a millisecond apart (the veth ring in front of a native XDP
    /// program holds 256).
    pub fn inject(&self, frame: &[u8], n: usize) {
        let mut left = n;
        while left > 0 {
            let burst = left.min(64);
            inject(
                &self.link.client,
                &self.link.client_if,
                frame.to_vec(),
                burst,
            );
            left -= burst;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The ban `ip show` reports for `addr`'s source (null if none).
    pub fn ban(&self, addr: &str) -> Value {
        self.ip_show(addr)["ban"].clone()
    }
}

/// A veth pair from `a`'s namespace to `b`'s, `a_addr`/`b_addr` (CIDR) on
/// its ends.
pub fn join(a: &Edge, b: &Edge, names: [&str; 2], a_addr: &str, b_addr: &str) {
    let (na, nb) = (&a.link.edge, &b.link.edge);
    na.ip(&[
        "link",
        "add",
        names[0],
        "type",
        "veth",
        "peer",
        "name",
        names[1],
        "netns",
        nb.name(),
    ]);
    na.ip(&["addr", "add", a_addr, "dev", names[0]]);
    nb.ip(&["addr", "add", b_addr, "dev", names[1]]);
    na.ip(&["link", "set", names[0], "up"]);
    nb.ip(&["link", "set", names[1], "up"]);
}

/// Starts a daemon per host and waits until each says the fleet is up.
pub fn start(hosts: &[&Edge]) -> Vec<Daemon> {
    let daemons: Vec<Daemon> = hosts
        .iter()
        .map(|e| Daemon::start(&e.link.edge, &e.config, &e.link.edge_if))
        .collect();
    for (e, d) in hosts.iter().zip(&daemons) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while e.call(&Request::FleetStatus)["health"] != "up" {
            assert!(Instant::now() < deadline, "fleet not up:\n{}", d.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    daemons
}

/// Three hosts up, Redis and their daemons. Fields drop in order: the
/// daemons, then Redis, then the hosts' namespaces.
pub struct Three {
    pub daemons: Vec<Daemon>,
    pub redis: Redis,
    pub hosts: [Edge; 3],
}

/// Hosts A, B and C (`{tag}a` ...), made by `spec` with [`REDIS`] as
/// their Redis: A holds it on its end of an A-B pair, C reaches it over
/// an A-C pair (A delivers it locally: no forwarding).
pub fn three_hosts(tag: &str, spec: &Spec) -> Three {
    let hosts =
        ["a", "b", "c"].map(|h| Edge::new(&format!("{tag}{h}"), &format!("{tag}{h}"), spec));
    let [a, b, c] = &hosts;
    join(
        a,
        b,
        ["fab0", "fab1"],
        &format!("{REDIS}/24"),
        "198.18.22.2/24",
    );
    join(a, c, ["fac0", "fac1"], "198.18.23.1/24", "198.18.23.3/24");
    c.link
        .edge
        .ip(&["route", "add", &format!("{REDIS}/32"), "via", "198.18.23.1"]);
    let redis = Redis::in_netns(&a.dir, &a.link.edge, REDIS);
    let daemons = start(&[a, b, c]);
    Three {
        daemons,
        redis,
        hosts,
    }
}

/// What Redis holds for `member` in every window of `counter` (`kernel:pps`).
pub fn fleet_total(redis: &Redis, fleet: &str, counter: &str, member: &str) -> u64 {
    let keys = redis.cli(&["KEYS", &format!("rampart:{{{fleet}}}:count:{counter}:*")]);
    keys.lines()
        .map(|k| {
            redis
                .cli(&["ZSCORE", k, member])
                .parse::<f64>()
                .unwrap_or(0.0) as u64
        })
        .sum()
}

/// Waits until every host's maps ban `src`'s source: the time each took
/// from `start`. Panics after 5 s with the first daemon's log.
pub fn banned_everywhere(t: &Three, src: &str, start: Instant) -> [Duration; 3] {
    let mut at: [Option<Duration>; 3] = [None; 3];
    while at.iter().any(Option::is_none) {
        for (slot, e) in at.iter_mut().zip(&t.hosts) {
            if slot.is_none() && !e.ban(src).is_null() {
                assert_eq!(e.ip_show(src)["enforced_in"], "kernel");
                *slot = Some(start.elapsed());
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{src} banned at {at:?}\n{}",
            t.daemons[0].log_text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    at.map(Option::unwrap)
}

/// `p50` and max of `samples` (sorted here).
pub fn p50_max(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}
