//! SYN cookies through BPF_PROG_TEST_RUN: the XDP program's SYN -> SYN-ACK
//! rewrite (addresses, ports, checksums, options, the cookie) and the tc
//! program's check of the ACK that comes back. Each test runs in its own
//! network namespace with a real listening socket, since both programs ask
//! the kernel whether one listens.

use std::{
    net::{IpAddr, SocketAddr, TcpListener},
    time::Duration,
};

use aya::programs::{TestRun, TestRunOptions};
use proxy_common::{
    cookie::{self, NO_WSCALE, Negotiated},
    stats,
    syncookie::{STAT_ACCEPTED, STAT_NOT_LISTENING, STAT_REFUSED},
};
use proxy_user::{
    config::{SynCookieMode, SynCookies},
    filter::{Filter, SynCookieMaps, monotonic_ns},
};
use socket2::{Domain, Protocol, Socket, Type};
use tests::{
    filter::{load, settings, verdict_of},
    netns::NetNs,
    pins::PinDir,
    privilege::require_root,
    segment::{self, ACK, CWR, ECE, Parsed, SYN, Segment},
};

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const PORT: u16 = 8080;

/// A filter answering every SYN to `PORT` (mode on), loaded in `pins`.
fn cookie_filter(pins: &PinDir, mode: SynCookieMode) -> Filter {
    let mut s = settings(pins.path());
    s.syn_cookies = SynCookies {
        mode,
        ports: vec![PORT, PORT + 1],
        ports_from_listeners: false,
        threshold: 1000,
        // The client veth runs an XDP program (client_rx): it takes XDP_TX frames.
        on_veth: true,
        synack_rate: 0,
    };
    let f = load(&s);
    assert_eq!(
        f.syn.unavailable, None,
        "SYN cookies must be available on this kernel"
    );
    f
}

/// A listener on `addr` in the calling thread's namespace (IPv6 ones IPv6-only).
fn listen(addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().unwrap();
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    if addr.is_ipv6() {
        s.set_only_v6(true).unwrap();
    }
    s.set_reuse_address(true).unwrap();
    s.bind(&addr.into()).expect("bind");
    s.listen(128).unwrap();
    s.into()
}

/// Runs `frame` through the XDP program and returns its action and output.
fn xdp_run(f: &Filter, frame: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; 256];
    let r = f
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            repeat: 1,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

fn flow(client: IpAddr, server: IpAddr, sport: u16, dport: u16, isn: u32) -> Vec<u64> {
    match (client, server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => {
            cookie::flow_v4(c.octets(), s.octets(), sport, dport, isn).to_vec()
        }
        (IpAddr::V6(c), IpAddr::V6(s)) => {
            cookie::flow_v6(c.octets(), s.octets(), sport, dport, isn).to_vec()
        }
        _ => panic!("mixed families"),
    }
}

/// The option bits of `cookie` for this handshake, checked as the tc program does.
fn check(
    key: [u64; 2],
    client: IpAddr,
    server: IpAddr,
    sport: u16,
    isn: u32,
    cookie: u32,
) -> Option<u32> {
    let now = monotonic_ns();
    let f = flow(client, server, sport, PORT, isn);
    match f.len() {
        2 => cookie::check(key, [f[0], f[1]], now, cookie),
        _ => cookie::check(key, [f[0], f[1], f[2], f[3], f[4]], now, cookie),
    }
}

/// Checks a SYN-ACK against the SYN it answers; returns it parsed.
fn assert_answers(out: &[u8], syn: &Segment, key: [u64; 2]) -> Parsed {
    let a = segment::parse(out);
    let what = format!("{} -> {}", syn.src, syn.dst);
    assert_eq!(
        a.dst_mac,
        [0x02, 0, 0, 0, 0, 0x01],
        "{what}: back to the sender's MAC"
    );
    assert_eq!(a.src_mac, [0x02, 0, 0, 0, 0, 0x02], "{what}");
    assert_eq!(a.vlan, syn.vlan, "{what}: VLAN tag kept");
    assert_eq!(
        (a.src, a.dst),
        (syn.dst, syn.src),
        "{what}: addresses swapped"
    );
    assert_eq!(
        (a.sport, a.dport),
        (syn.dport, syn.sport),
        "{what}: ports swapped"
    );
    assert!(a.ip_ok, "{what}: IPv4 header (checksum, DF, id 0)");
    assert_eq!(a.ttl, 64, "{what}");
    assert!(a.tcp_checksum_ok, "{what}: TCP checksum");
    assert_eq!(a.flags & (SYN | ACK), SYN | ACK, "{what}: SYN-ACK");
    assert_eq!(
        a.ack,
        syn.seq.wrapping_add(1),
        "{what}: acknowledges the SYN"
    );
    assert_eq!(a.payload, 0, "{what}: no payload");
    let bits = check(key, syn.src, syn.dst, syn.sport, syn.seq, a.seq).unwrap_or_else(|| {
        panic!(
            "{what}: the sequence number {:#x} is not a valid cookie",
            a.seq
        )
    });
    // The same cookie for another client ISN is not valid.
    assert_eq!(
        check(key, syn.src, syn.dst, syn.sport, syn.seq ^ 1, a.seq),
        None
    );
    let n = Negotiated::from_bits(bits);
    let mss = u16::from_be_bytes(a.option(2).expect("MSS option").try_into().unwrap());
    assert_eq!(
        mss,
        if a.src.is_ipv4() { 1460 } else { 1440 },
        "{what}: our MSS"
    );
    let _ = n;
    a
}

#[test]
fn a_syn_becomes_a_syn_ack_with_a_valid_cookie() {
    if !require_root("a_syn_becomes_a_syn_ack_with_a_valid_cookie") {
        return;
    }
    let ns = NetNs::new("syn14rw");
    ns.with(|| {
        let _l4 = listen(&format!("0.0.0.0:{PORT}"));
        let _l6 = listen(&format!("[::]:{PORT}"));
        let pins = PinDir::new("syn14rw");
        let f = cookie_filter(&pins, SynCookieMode::On);
        let key = SynCookieMaps::open(pins.path())
            .unwrap()
            .config()
            .unwrap()
            .key;
        assert_ne!(key, [0, 0], "a key was made");

        for (client, server) in [("198.18.0.2", "198.18.0.1"), ("fd72::2", "fd72::1")] {
            // A Linux client: MSS 1460, SACK, timestamps, window scale 7.
            let mut syn = Segment::new(client, server, 40000, PORT);
            syn.seq = 0xabcd_ef01;
            syn.options = segment::linux_syn_options(1460, 0x1122_3344);
            let frame = syn.build();
            let (action, verdict) = verdict_of(&f, &frame);
            assert_eq!((action, verdict), (XDP_TX, stats::SYN_COOKIE), "{client}");
            let (_, out) = xdp_run(&f, &frame);
            let a = assert_answers(&out, &syn, key);
            let bits = check(key, syn.src, syn.dst, syn.sport, syn.seq, a.seq).unwrap();
            let n = Negotiated::from_bits(bits);
            let v6 = a.src.is_ipv6();
            assert_eq!(
                n.mss_index,
                cookie::mss_index(v6, 1460),
                "{client}: the client's MSS in the cookie"
            );
            assert_eq!((n.wscale, n.sack, n.ecn), (7, true, false), "{client}");
            assert_eq!(
                a.option(3).map(|w| w.len()),
                Some(1),
                "{client}: our window scale"
            );
            assert_eq!(a.option(4), Some(vec![]), "{client}: SACK permitted");
            let ts = a.option(8).expect("timestamps");
            assert_ne!(&ts[..4], &[0, 0, 0, 0], "{client}: our tsval");
            assert_eq!(
                &ts[4..],
                &0x1122_3344u32.to_be_bytes(),
                "{client}: the client's tsval echoed"
            );
            assert!(a.window > 0);
        }

        // Windows-like SYN (no timestamps), ECN requested, a VLAN tag.
        let mut syn = Segment::new("198.18.0.3", "198.18.0.1", 50000, PORT);
        syn.seq = 7;
        syn.flags = SYN | ECE | CWR;
        syn.options = vec![2, 4, 0x05, 0x78, 1, 3, 3, 8, 1, 1, 4, 2];
        syn.vlan = Some(42);
        let (action, out) = xdp_run(&f, &syn.build());
        assert_eq!(action, XDP_TX);
        let a = assert_answers(&out, &syn, key);
        assert_eq!(a.option(8), None, "no timestamps offered back");
        assert_eq!(a.flags & ECE, ECE, "ECN answered");
        let n = Negotiated::from_bits(check(key, syn.src, syn.dst, 50000, 7, a.seq).unwrap());
        assert_eq!(n.mss_index, 1, "1400 rounds down to 1300");
        assert_eq!((n.wscale, n.sack, n.ecn), (8, true, true));

        // A SYN with no options at all: the default MSS, nothing else.
        let mut syn = Segment::new("198.18.0.4", "198.18.0.1", 50001, PORT);
        syn.seq = 99;
        let (action, out) = xdp_run(&f, &syn.build());
        assert_eq!(action, XDP_TX);
        let a = assert_answers(&out, &syn, key);
        assert_eq!(a.option_list().len(), 1, "only MSS: {:?}", a.option_list());
        let n = Negotiated::from_bits(check(key, syn.src, syn.dst, 50001, 99, a.seq).unwrap());
        assert_eq!((n.mss_index, n.wscale, n.sack), (0, NO_WSCALE, false));

        // Not answered: no listener on the port, a port not protected, an ACK.
        let maps = SynCookieMaps::open(pins.path()).unwrap();
        let before = maps.stats().unwrap();
        let cases = [
            (
                "no listener",
                Segment::new("198.18.0.2", "198.18.0.1", 40001, PORT + 1),
            ),
            (
                "unprotected port",
                Segment::new("198.18.0.2", "198.18.0.1", 40002, 9),
            ),
        ];
        for (what, seg) in cases {
            assert_eq!(
                verdict_of(&f, &seg.build()),
                (XDP_PASS, stats::PASS),
                "{what}"
            );
        }
        assert_eq!(
            maps.stats().unwrap()[STAT_NOT_LISTENING as usize],
            before[STAT_NOT_LISTENING as usize] + 1
        );
        let mut ack = Segment::new("198.18.0.2", "198.18.0.1", 40003, PORT);
        ack.flags = ACK;
        assert_eq!(
            verdict_of(&f, &ack.build()).1,
            stats::PASS,
            "an ACK is not answered"
        );
    });
}

#[test]
fn with_cookies_off_a_syn_passes() {
    if !require_root("with_cookies_off_a_syn_passes") {
        return;
    }
    let ns = NetNs::new("syn14off");
    ns.with(|| {
        let _l = listen(&format!("0.0.0.0:{PORT}"));
        let pins = PinDir::new("syn14off");
        let f = cookie_filter(&pins, SynCookieMode::Off);
        let mut syn = Segment::new("198.18.0.2", "198.18.0.1", 40000, PORT);
        syn.options = segment::linux_syn_options(1460, 1);
        assert_eq!(verdict_of(&f, &syn.build()), (XDP_PASS, stats::PASS));
        // Auto, under the threshold (1000/s): passed too.
        let pins = PinDir::new("syn14auto");
        let f = cookie_filter(&pins, SynCookieMode::Auto);
        assert_eq!(verdict_of(&f, &syn.build()), (XDP_PASS, stats::PASS));
    });
}

/// Runs an ACK through the tc program: its return value.
fn tc_run(f: &Filter, frame: &[u8]) -> i32 {
    f.ack_program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: 1,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN (tc)")
        .return_value as i32
}

#[test]
fn the_tc_program_takes_the_acks_of_its_cookies_only() {
    if !require_root("the_tc_program_takes_the_acks_of_its_cookies_only") {
        return;
    }
    let ns = NetNs::new("syn14ack");
    ns.with(|| {
        let _l = listen(&format!("0.0.0.0:{PORT}"));
        let pins = PinDir::new("syn14ack");
        let f = cookie_filter(&pins, SynCookieMode::On);
        let maps = SynCookieMaps::open(pins.path()).unwrap();
        let mut syn = Segment::new("198.18.0.2", "198.18.0.1", 40000, PORT);
        syn.seq = 1000;
        syn.options = segment::linux_syn_options(1460, 555);
        let (action, out) = xdp_run(&f, &syn.build());
        assert_eq!(action, XDP_TX);
        let synack = segment::parse(&out);
        let our_ts = u32::from_be_bytes(synack.option(8).unwrap()[..4].try_into().unwrap());

        let ack_for = |cookie: u32, seq: u32| {
            let mut a = Segment::new("198.18.0.2", "198.18.0.1", 40000, PORT);
            a.flags = ACK;
            a.seq = seq;
            a.ack = cookie.wrapping_add(1);
            a.options = segment::ts_options(556, our_ts);
            a.build()
        };
        let reached = |frame: &[u8]| {
            let before = maps.stats().unwrap();
            let rc = tc_run(&f, frame);
            let after = maps.stats().unwrap();
            let taken = after[STAT_ACCEPTED as usize] - before[STAT_ACCEPTED as usize];
            let refused = after[STAT_REFUSED as usize] - before[STAT_REFUSED as usize];
            (rc, taken + refused)
        };
        // The ACK of our SYN-ACK reaches the kfunc. Outside tc ingress (as
        // here) the kernel refuses to attach a request socket, so the
        // program counts a refusal and leaves the packet to the stack; the
        // veth test sees it accepted.
        let (rc, kfunc) = reached(&ack_for(synack.seq, 1001));
        assert_eq!(kfunc, 1, "a valid cookie reaches the kernel (rc {rc})");
        // Wrong cookie, wrong client sequence, other port: not even tried.
        for (what, frame) in [
            ("cookie + 1", ack_for(synack.seq.wrapping_add(1), 1001)),
            (
                "cookie ^ 0x100 (other period)",
                ack_for(synack.seq ^ 0x100, 1001),
            ),
            ("the client's ISN changed", ack_for(synack.seq, 1002)),
        ] {
            assert_eq!(reached(&frame), (-1, 0), "{what}");
        }
        let mut other = Segment::new("198.18.0.9", "198.18.0.1", 40000, PORT);
        other.flags = ACK;
        other.seq = 1001;
        other.ack = synack.seq.wrapping_add(1);
        assert_eq!(reached(&other.build()), (-1, 0), "another client");
        std::thread::sleep(Duration::from_millis(1));
    });
}

#[test]
fn pinned_counter_maps_of_an_older_build_are_replaced() {
    if !require_root("pinned_counter_maps_of_an_older_build_are_replaced") {
        return;
    }
    // What older builds left pinned: the same key and value, fewer slots
    // (8 verdicts before SYN cookies, 5 SYN counters before the SYN-ACK
    // budget). Adopted as they are, `syn_cookie` and `syns_over_budget`
    // would never be counted, and reading the last counter would fail.
    let pins = PinDir::new("syn14old");
    std::fs::create_dir_all(pins.path()).unwrap();
    for (name, value, entries) in [
        (proxy_common::pin::VERDICTS, "16", "8"),
        (proxy_common::pin::SYN_STATS, "8", "5"),
    ] {
        let out = std::process::Command::new("bpftool")
            .args(["map", "create"])
            .arg(pins.path().join(name))
            .args([
                "type",
                "percpu_array",
                "key",
                "4",
                "value",
                value,
                "entries",
                entries,
                "name",
                name,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bpftool: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let f = load(&settings(pins.path()));
    let path = pins.path().join(proxy_common::pin::VERDICTS);
    let info = aya::maps::MapInfo::from_pin(&path).unwrap();
    assert_eq!(
        info.max_entries(),
        stats::VERDICTS,
        "a map with every verdict"
    );
    assert_eq!(f.maps.verdicts().unwrap().len(), stats::VERDICTS as usize);
    let path = pins.path().join(proxy_common::pin::SYN_STATS);
    let info = aya::maps::MapInfo::from_pin(&path).unwrap();
    assert_eq!(info.max_entries(), proxy_common::syncookie::STATS);
    assert!(SynCookieMaps::open(pins.path()).unwrap().stats().is_ok());
}
