//! SYN cookies end to end on a veth pair: a spoofed SYN flood from the
//! client namespace ends in XDP (none of its SYNs reaches the edge's TCP
//! stack, counted by the kernel itself: `nstat` TcpInSegs), while a real
//! client in the same namespace connects, over IPv4 and IPv6, through
//! cookies the tc program turns into sockets. With cookies off, the same
//! flood does reach the stack (the measure can see it).

use std::{
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{Array, Map, MapData},
    programs::{SchedClassifier, TcAttachType, Xdp, XdpMode},
};
use proxy_common::{
    pin, stats,
    syncookie::{STAT_ACCEPTED, STAT_ATTACKS, SynCookieConfig},
};
use proxy_user::{
    config::{AttachMode, FilterSettings, SynCookieMode, SynCookies},
    filter::{Filter, SynCookieMaps, monotonic_ns},
};
use socket2::{Domain, Protocol, Socket, Type};
use tests::{
    filter::{load, settings},
    flood::{grew, nstat, spoofed_syns},
    netns::{Link, NetNs},
    pins::PinDir,
    privilege::require_root,
};

const EDGE4: &str = "198.18.0.1";
const EDGE6: &str = "fd72::1";
const PORT: u16 = 8080;
/// Flood SYNs per phase (and the most time one may take).
const FLOOD: usize = 20_000;
const FLOOD_MAX: Duration = Duration::from_secs(6);

/// The edge: a listener answering "hello" to every connection, the filter
/// with SYN cookies on its veth, and the client side's XDP program.
struct Edge {
    link: Link,
    pins: PinDir,
    filter: Filter,
    settings: FilterSettings,
    stop: Arc<AtomicBool>,
    _client_rx: Ebpf,
}

impl Edge {
    fn new(tag: &str, mode: SynCookieMode, threshold: u32) -> Edge {
        let link = Link::new(tag);
        link.edge_addr(&format!("{EDGE4}/24"));
        link.client_addr("198.18.0.2/24");
        link.edge_addr(&format!("{EDGE6}/64"));
        link.client_addr("fd72::2/64");
        let stop = Arc::new(AtomicBool::new(false));
        for addr in [format!("{EDGE4}:{PORT}"), format!("[{EDGE6}]:{PORT}")] {
            let listener = link.edge.run(move || listener(&addr));
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(mut c) = conn {
                        let _ = std::io::Write::write_all(&mut c, b"hello");
                    }
                }
            });
        }
        let pins = PinDir::new(tag);
        let mut s = settings(pins.path());
        s.syn_cookies = SynCookies {
            mode,
            ports: vec![PORT],
            ports_from_listeners: false,
            threshold,
            // The client veth runs an XDP program (client_rx): it takes XDP_TX frames.
            on_veth: true,
            synack_rate: 0,
        };
        let mut filter = load(&s);
        let iface = link.edge_if.clone();
        link.edge
            .with(|| filter.attach(&iface, AttachMode::Native))
            .expect("attach");
        assert_eq!(
            filter.syn.unavailable, None,
            "SYN cookies must run on this kernel"
        );
        // The client veth takes the edge's XDP_TX frames only with an XDP
        // program of its own; this one also drops the answers to 10.0.0.0/8.
        let mut client_rx = Ebpf::load(proxy_user::filter::object::BENCH).unwrap();
        let prog: &mut Xdp = client_rx
            .program_mut("client_rx")
            .unwrap()
            .try_into()
            .unwrap();
        prog.load().unwrap();
        let client_if = link.client_if.clone();
        link.client
            .with(|| prog.attach(&client_if, XdpMode::Driver))
            .expect("client_rx");
        Edge {
            link,
            pins,
            filter,
            settings: s,
            stop,
            _client_rx: client_rx,
        }
    }

    fn set_mode(&mut self, mode: SynCookieMode) {
        self.settings.syn_cookies.mode = mode;
        self.filter.sync(&self.settings).unwrap();
    }

    fn maps(&self) -> SynCookieMaps {
        SynCookieMaps::open(self.pins.path()).unwrap()
    }

    fn edge_mac(&self) -> [u8; 6] {
        let out = self
            .link
            .edge
            .ip(&["-j", "link", "show", &self.link.edge_if]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut mac = [0u8; 6];
        for (i, b) in v[0]["address"].as_str().unwrap().split(':').enumerate() {
            mac[i] = u8::from_str_radix(b, 16).unwrap();
        }
        mac
    }

    /// Floods the edge with spoofed SYNs while `during` runs in the client
    /// namespace; returns the SYNs sent and what `during` returned.
    fn flood<T: Send + 'static>(&self, during: impl FnOnce() -> T + Send + 'static) -> (usize, T) {
        let (mac, dev, ns) = (
            self.edge_mac(),
            self.link.client_if.clone(),
            self.link.client.name().to_string(),
        );
        let client = self.link.client.name().to_string();
        std::thread::scope(|s| {
            let flood = s.spawn(move || {
                spoofed_syns(
                    &NetNs::existing(&ns),
                    &dev,
                    mac,
                    EDGE4.parse().unwrap(),
                    PORT,
                    FLOOD,
                    FLOOD_MAX,
                )
            });
            // Let the flood get going first.
            std::thread::sleep(Duration::from_millis(200));
            let got = NetNs::existing(&client).run(during);
            (flood.join().unwrap(), got)
        })
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake both acceptors so their threads end.
        for addr in [format!("{EDGE4}:{PORT}"), format!("[{EDGE6}]:{PORT}")] {
            let addr: SocketAddr = addr.parse().unwrap();
            let _ = self
                .link
                .edge
                .run(move || TcpStream::connect_timeout(&addr, Duration::from_millis(200)));
        }
    }
}

fn listener(addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    if addr.is_ipv6() {
        s.set_only_v6(true).unwrap();
    }
    s.bind(&addr.into()).expect("bind");
    s.listen(1024).unwrap();
    s.into()
}

/// `n` connections to `dst` one after the other, each given two seconds
/// to connect and to read the server's "hello"; how many got it.
fn connect(dst: &str, n: usize) -> usize {
    let dst: SocketAddr = dst.parse().unwrap();
    (0..n)
        .filter(|_| {
            let Ok(mut c) = TcpStream::connect_timeout(&dst, Duration::from_secs(2)) else {
                return false;
            };
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).is_ok() && &buf == b"hello"
        })
        .count()
}

fn connect_in(link: &Link, dst: &'static str, n: usize) -> usize {
    link.client.run(move || connect(dst, n))
}

const V4: &str = "198.18.0.1:8080";
const V6: &str = "[fd72::1]:8080";

#[test]
fn a_spoofed_syn_flood_ends_in_xdp_while_real_clients_connect() {
    if !require_root("a_spoofed_syn_flood_ends_in_xdp_while_real_clients_connect") {
        return;
    }
    let started = Instant::now();
    let mut edge = Edge::new("syn14e", SynCookieMode::Off, 1000);

    // Cookies off: the flood reaches the edge's TCP stack, one segment per SYN.
    let before = nstat(&edge.link.edge);
    let (sent, ()) = edge.flood(|| ());
    let after = nstat(&edge.link.edge);
    let reached = grew(&before, &after, "TcpInSegs");
    eprintln!("cookies off: {sent} flood SYNs sent, {reached} TCP segments received");
    assert!(sent >= FLOOD / 2, "the generator sent {sent} SYNs");
    assert!(
        reached as f64 >= 0.9 * sent as f64,
        "without cookies {reached} of {sent} flood SYNs reached TCP: the measure cannot see the flood"
    );

    // Cookies on: real clients connect during the same flood, over IPv4 and
    // IPv6, and no flood SYN reaches the stack.
    edge.set_mode(SynCookieMode::On);
    let verdicts = edge.filter.maps.verdicts().unwrap();
    let accepted = edge.maps().stats().unwrap()[STAT_ACCEPTED as usize];
    let before = nstat(&edge.link.edge);
    let (sent, (ok4, ok6)) = edge.flood(|| (connect(V4, 20), connect(V6, 5)));
    let after = nstat(&edge.link.edge);
    assert_eq!(
        (ok4, ok6),
        (20, 5),
        "real clients connected during the flood"
    );
    assert!(sent >= FLOOD / 2, "the generator sent {sent} SYNs");
    let answered = edge.filter.maps.verdicts().unwrap()[stats::SYN_COOKIE as usize].packets
        - verdicts[stats::SYN_COOKIE as usize].packets;
    assert!(
        answered >= sent as u64 + 25,
        "{answered} SYNs answered in XDP, {sent} flood SYNs and 25 real ones sent"
    );
    // Each real connection costs the stack its handshake ACK, its FIN and
    // ACKs: well under 10 segments. None of the flood's SYNs is among them.
    let reached = grew(&before, &after, "TcpInSegs");
    eprintln!(
        "cookies on: {sent} flood SYNs sent, {answered} SYNs answered in XDP, \
         {reached} TCP segments received, 25 of 25 real connections"
    );
    assert!(
        reached <= 25 * 10,
        "{reached} segments reached TCP during a flood of {sent} SYNs and 25 connections"
    );
    assert_eq!(
        grew(&before, &after, "TcpExtSyncookiesSent"),
        0,
        "the kernel never had to send a cookie"
    );
    assert_eq!(grew(&before, &after, "TcpExtListenOverflows"), 0);
    assert_eq!(
        grew(&before, &after, "TcpPassiveOpens"),
        25,
        "exactly the real connections were opened"
    );
    let taken = edge.maps().stats().unwrap()[STAT_ACCEPTED as usize] - accepted;
    assert_eq!(taken, 25, "every real connection went through a cookie");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}

/// Sets `hold_ns` of the pinned `syn_cookie` map (the daemon writes 10 s).
fn set_hold(pins: &PinDir, hold: Duration) {
    let data = MapData::from_pin(pins.path().join(pin::SYN_COOKIE)).unwrap();
    let mut map: Array<MapData, SynCookieConfig> =
        Array::try_from(Map::from_map_data(data).unwrap()).unwrap();
    let mut c = map.get(&0, 0).unwrap();
    c.hold_ns = hold.as_nanos() as u64;
    map.set(0, c, 0).unwrap();
}

#[test]
fn auto_mode_turns_cookies_on_for_a_flood_only() {
    if !require_root("auto_mode_turns_cookies_on_for_a_flood_only") {
        return;
    }
    const THRESHOLD: u32 = 500;
    let edge = Edge::new("syn14a", SynCookieMode::Auto, THRESHOLD);
    set_hold(&edge.pins, Duration::from_secs(2));
    let ns = &edge.link.edge;

    // No flood: the kernel handshakes as usual, no cookie is sent.
    let stats0 = edge.maps().stats().unwrap();
    assert_eq!(connect_in(&edge.link, V4, 10), 10);
    let stats1 = edge.maps().stats().unwrap();
    assert_eq!(
        stats1[STAT_ACCEPTED as usize], stats0[STAT_ACCEPTED as usize],
        "no cookies without a flood"
    );
    assert_eq!(edge.maps().state().unwrap().attack_until_ns, 0);

    // A flood: cookies go on within the threshold's worth of SYNs, and
    // real clients connect through them.
    let before = nstat(ns);
    let (sent, ok) = edge.flood(|| connect(V4, 20));
    let after = nstat(ns);
    assert_eq!(ok, 20, "real clients connected during the flood");
    let stats2 = edge.maps().stats().unwrap();
    assert!(
        stats2[STAT_ATTACKS as usize] > stats1[STAT_ATTACKS as usize],
        "cookies went on"
    );
    assert!(
        stats2[STAT_ACCEPTED as usize] > stats1[STAT_ACCEPTED as usize],
        "real clients used them"
    );
    let reached = grew(&before, &after, "TcpInSegs");
    eprintln!(
        "auto: {sent} flood SYNs sent, {reached} TCP segments received, 20 of 20 real connections"
    );
    // The budget: at most the threshold's worth of flood SYNs (per CPU, per
    // second of the flood before cookies start), plus the real connections'
    // segments (under 10 each).
    let budget = THRESHOLD as u64 + 20 * 10;
    assert!(
        reached <= budget,
        "{reached} segments reached TCP during a flood of {sent} SYNs (budget {budget})"
    );

    // After the flood, and the hold (2 s here), cookies go off again.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(edge.maps().state().unwrap().attack_until_ns < monotonic_ns());
    let stats3 = edge.maps().stats().unwrap();
    assert_eq!(connect_in(&edge.link, V4, 5), 5);
    assert_eq!(
        edge.maps().stats().unwrap()[STAT_ACCEPTED as usize],
        stats3[STAT_ACCEPTED as usize],
        "no cookies once the flood is over"
    );
}

/// Ids of the programs attached to `dev`'s tc ingress through TCX, in `ns`.
fn tc_programs(ns: &NetNs, dev: &str) -> Vec<u32> {
    ns.with(|| SchedClassifier::query_tcx(dev, TcAttachType::Ingress))
        .expect("query tcx")
        .1
        .iter()
        .map(|p| p.id())
        .collect()
}

#[test]
fn the_tc_program_outlives_the_daemon_and_the_next_one_takes_it_over() {
    if !require_root("the_tc_program_outlives_the_daemon_and_the_next_one_takes_it_over") {
        return;
    }
    let link = Link::new("syn14l");
    let pins = PinDir::new("syn14l");
    let mut s = settings(pins.path());
    s.syn_cookies = SynCookies {
        mode: SynCookieMode::On,
        ports: vec![PORT],
        ports_from_listeners: false,
        threshold: 1000,
        // The client veth runs an XDP program (client_rx): it takes XDP_TX frames.
        on_veth: true,
        synack_rate: 0,
    };
    let iface = link.edge_if.clone();
    let attach = |f: &mut Filter| {
        link.edge
            .with(|| f.attach(&iface, AttachMode::Native))
            .expect("attach");
        assert_eq!(f.syn.unavailable, None);
    };
    let mut first = load(&s);
    attach(&mut first);
    let before = tc_programs(&link.edge, &iface);
    assert_eq!(before.len(), 1, "one tc program: {before:?}");
    assert!(
        pins.path().join(format!("ack_link_{iface}")).exists(),
        "its link is pinned"
    );
    // The daemon goes (on_exit = "keep"): the program stays.
    drop(first);
    assert_eq!(tc_programs(&link.edge, &iface).len(), 1, "still attached");
    // The next one takes the same link over: still one, now its own.
    let mut second = load(&s);
    attach(&mut second);
    let after = tc_programs(&link.edge, &iface);
    assert_eq!(
        after.len(),
        1,
        "one tc program after the takeover: {after:?}"
    );
    assert_ne!(after[0], before[0], "the new daemon's program");
    // on_exit = "detach": gone, and the pin with it.
    second.detach().unwrap();
    assert_eq!(
        tc_programs(&link.edge, &iface),
        Vec::<u32>::new(),
        "detached"
    );
    assert!(!pins.path().join(format!("ack_link_{iface}")).exists());
}

#[test]
fn on_a_veth_in_native_mode_cookies_wait_for_on_veth() {
    if !require_root("on_a_veth_in_native_mode_cookies_wait_for_on_veth") {
        return;
    }
    // Without an XDP program (or GRO) on the peer, a veth drops what XDP_TX
    // sends it: cookies there would lose every SYN-ACK. Not said: off.
    let link = Link::new("syn14n");
    let pins = PinDir::new("syn14n");
    let mut s = settings(pins.path());
    s.syn_cookies = SynCookies {
        mode: SynCookieMode::On,
        ports: vec![PORT],
        ports_from_listeners: false,
        threshold: 1000,
        on_veth: false,
        synack_rate: 0,
    };
    let mut f = load(&s);
    let iface = link.edge_if.clone();
    link.edge
        .with(|| f.attach(&iface, AttachMode::Native))
        .expect("XDP attaches all the same");
    let why = f.syn.unavailable.clone().unwrap_or_default();
    assert!(why.contains("is a veth attached in native mode"), "{why}");
    let maps = SynCookieMaps::open(pins.path()).unwrap();
    assert_eq!(
        maps.config().unwrap().mode,
        proxy_common::syncookie::MODE_OFF
    );
    assert_eq!(
        tc_programs(&link.edge, &iface),
        Vec::<u32>::new(),
        "no tc program either"
    );
}
