//! Drop rate on a veth pair fed by one of the [`crate::generator`]s, beside
//! the trivial program, xdp-filter and an nftables netdev rule; the
//! measurement and filter set-ups here are shared with [`crate::spoofed`].

use std::process::Command;

use aya::programs::XdpMode;
use proxy_user::{
    cidr::Cidr,
    config::{RateLimit, SynCookieMode, SynCookies},
};
use tests::{
    filter::{limit, load},
    netns::Link,
    packet::Frame,
    pins::PinDir,
};

use crate::{
    Opts, Row, bench_programs, feed, full_settings,
    generator::{Generator, Kind},
    table, xdp,
};

/// Sum of the `ethtool -S` statistics of the edge veth whose names end in
/// `suffix` (one per receive queue).
fn ethtool_sum(link: &Link, suffix: &str) -> u64 {
    let out = link
        .edge
        .command("ethtool")
        .args(["-S", &link.edge_if])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(suffix))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
        .sum()
}

/// Sum of `rx_queue_*_xdp_drops`: frames the edge's XDP program dropped.
pub fn xdp_drops(link: &Link) -> u64 {
    ethtool_sum(link, "_xdp_drops:")
}

/// Frames the edge's XDP program dropped or sent back (`_xdp_tx`: SYNs
/// answered with SYN cookies; `_xdp_tx_errors`, the same that veth could
/// not queue to its peer): none of them reaches its stack.
pub fn xdp_drops_or_answers(link: &Link) -> u64 {
    ethtool_sum(link, "_xdp_drops:")
        + ethtool_sum(link, "_xdp_tx:")
        + ethtool_sum(link, "_xdp_tx_errors:")
}

/// Packets counted by the nftables rules of the edge's bench table.
pub fn nft_counter(link: &Link) -> u64 {
    let out = link
        .edge
        .command("nft")
        .args(["-j", "list", "chain", "netdev", "bench", "ingress"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["rule"]["expr"].as_array())
        .flatten()
        .filter_map(|x| x["counter"]["packets"].as_u64())
        .sum()
}

pub fn edge_mac(link: &Link) -> [u8; 6] {
    let out = link.edge.ip(&["-j", "link", "show", &link.edge_if]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut mac = [0u8; 6];
    for (i, b) in v[0]["address"].as_str().unwrap().split(':').enumerate() {
        mac[i] = u8::from_str_radix(b, 16).unwrap();
    }
    mac
}

/// Sum of `rx_queue_*_xdp_packets` from `ethtool -S`: every frame the edge
/// veth took off its ring, whatever the program (or, without one, the
/// stack) did with it.
pub fn processed(link: &Link) -> u64 {
    ethtool_sum(link, "_xdp_packets:")
}

/// One veth measurement: a fresh link, `setup` installs the filter on the
/// edge side, then `frame` floods it from the generator; returns `count`
/// before and after the measured flood and how long it lasted in seconds.
pub fn measure<T>(
    opts: &Opts,
    kind: Kind,
    frame: &Frame,
    spoof: bool,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    count: impl Fn(&Link) -> T,
) -> (T, T, f64) {
    let link = Link::new("vb");
    let guard = setup(&link);
    // The client veth takes what the edge sends back with XDP_TX (SYN
    // cookies) only with an XDP program; `client_rx` drops it there, as it
    // would leave a real host (answers to spoofed sources).
    let mut client_rx = bench_programs();
    let client_if = link.client_if.clone();
    link.client
        .with(|| xdp(&mut client_rx, "client_rx").attach(&client_if, XdpMode::Driver))
        .expect("client_rx");
    let mut frame = frame.build();
    frame[..6].copy_from_slice(&edge_mac(&link));
    // A TCP checksum the kernel accepts, so SYNs that get past the filter
    // reach the listener as a real flood's do (the generators keep it right).
    tests::segment::fix_tcp_checksum(&mut frame);
    let mut generator = Generator::new(kind, &link);
    // Warm up (neighbour tables, caches), then measure.
    generator.run(&link, &frame, spoof, 1);
    let before = count(&link);
    let secs = generator.run(&link, &frame, spoof, opts.veth_secs);
    let after = count(&link);
    drop(generator);
    drop(guard);
    drop(client_rx);
    (before, after, secs.as_secs_f64())
}

/// Mpps counted by `count` while frames from `src` flood the edge.
fn rate(
    opts: &Opts,
    kind: Kind,
    src: &str,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    count: impl Fn(&Link) -> u64,
) -> f64 {
    let frame = Frame::v4(src, "198.18.0.1").payload(18);
    let (before, after, secs) = measure(opts, kind, &frame, false, setup, count);
    (after - before) as f64 / secs / 1e6
}

/// `--object PATH`: the rampart object the veth and spoofed sections
/// load instead of this build's (to A/B an eBPF-only change on veth).
pub static OBJECT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// rampart with `s`, from `--object` if given.
fn load_rampart(s: &proxy_user::config::FilterSettings) -> proxy_user::filter::Filter {
    match OBJECT.get() {
        Some(object) => proxy_user::filter::Filter::load_object(object, s)
            .unwrap_or_else(|e| panic!("loading the filter from --object: {e:?}")),
        None => load(s),
    }
}

/// The trivial program on the edge.
pub fn trivial(link: &Link) -> Box<dyn std::any::Any> {
    let mut ebpf = bench_programs();
    let iface = link.edge_if.clone();
    link.edge
        .with(|| xdp(&mut ebpf, "drop_all").attach(&iface, XdpMode::Driver))
        .unwrap();
    Box::new(ebpf)
}

/// rampart with every check (see `full_settings`), `block` as its
/// blocklist and, if given, these packet and SYN limits.
pub fn rampart(
    block: Vec<Cidr>,
    pps: Option<RateLimit>,
    syn: Option<RateLimit>,
) -> impl FnOnce(&Link) -> Box<dyn std::any::Any> {
    move |link: &Link| -> Box<dyn std::any::Any> {
        let pins = PinDir::new("vb");
        let mut s = full_settings(&pins, block);
        if pps.is_some() {
            s.pps = pps;
        }
        if syn.is_some() {
            s.syn = syn;
        }
        let mut f = load_rampart(&s);
        let iface = link.edge_if.clone();
        link.edge
            .with(|| f.attach(&iface, proxy_user::config::AttachMode::Native))
            .unwrap();
        Box::new((f, pins))
    }
}

/// rampart with every check (as [`rampart`]) and SYN cookies on `port` in
/// `mode` (auto: above 1,000 SYN/s); with `listen`, a listener there too
/// (cookies are only sent for ports something listens on). `syn` is the
/// per-source SYN limit; `None`: no per-source limits or tracking at all
/// (lists and bans only), to see what the SYN path costs by itself.
pub fn rampart_cookies(
    block: Vec<Cidr>,
    syn: Option<RateLimit>,
    port: u16,
    mode: SynCookieMode,
    listen: bool,
    synack_rate: u32,
) -> impl FnOnce(&Link) -> Box<dyn std::any::Any> {
    move |link: &Link| -> Box<dyn std::any::Any> {
        let pins = PinDir::new("vb");
        let mut s = full_settings(&pins, block);
        s.pps = limit(1_000_000_000, 1_000_000_000);
        s.syn = syn;
        if syn.is_none() {
            s.pps = None;
            s.track_sources = false;
        }
        s.syn_cookies = SynCookies {
            mode,
            ports: vec![port],
            ports_from_listeners: false,
            threshold: 1000,
            // The client veth runs an XDP program (client_rx): it takes XDP_TX frames.
            on_veth: true,
            // 100,000,000: a budget never spent here (the rows pay its
            // check, not its drops).
            synack_rate,
        };
        let listener = listen.then(|| {
            link.edge
                .run(move || std::net::TcpListener::bind(("0.0.0.0", port)).expect("listen"))
        });
        let mut f = load_rampart(&s);
        let iface = link.edge_if.clone();
        link.edge
            .with(|| f.attach(&iface, proxy_user::config::AttachMode::Native))
            .unwrap();
        if let Some(why) = &f.syn.unavailable {
            eprintln!("SYN cookies unavailable: {why}");
        }
        Box::new(CookieReport(f, pins, listener))
    }
}

/// A filter with SYN cookies (and the listener they need) that says on
/// stderr, when dropped, what its SYN path did (so a row that did not
/// engage them shows why).
struct CookieReport(
    proxy_user::filter::Filter,
    PinDir,
    #[expect(dead_code, reason = "held open for the filter's listener check")]
    Option<std::net::TcpListener>,
);

impl Drop for CookieReport {
    fn drop(&mut self) {
        let v = self.0.maps.verdicts().unwrap_or_default();
        let s = proxy_user::filter::SynCookieMaps::open(self.1.path()).and_then(|m| m.stats());
        let verdicts: Vec<String> = v
            .iter()
            .enumerate()
            .filter(|(_, c)| c.packets > 0)
            .map(|(i, c)| format!("{} {}", proxy_common::stats::VERDICT_NAMES[i], c.packets))
            .collect();
        eprintln!(
            "  SYN cookies: verdicts {}; {:?}",
            verdicts.join(", "),
            s.map(|s| s.to_vec()).map_err(|e| e.to_string()),
        );
    }
}

/// The rampart filter a set-up of [`rampart`] or [`rampart_cookies`]
/// returned, to read its maps; `None` for any other set-up.
pub fn filter_of(guard: &dyn std::any::Any) -> Option<&proxy_user::filter::Filter> {
    guard
        .downcast_ref::<(proxy_user::filter::Filter, PinDir)>()
        .map(|g| &g.0)
        .or_else(|| guard.downcast_ref::<CookieReport>().map(|g| &g.0))
}

/// An nftables netdev-ingress table on the edge: `decls` (sets) and the
/// chain's `rule`. GRO goes on so the veth takes frames redirected to it
/// without an XDP program of its own.
pub fn nftables(decls: String, rule: String) -> impl FnOnce(&Link) -> Box<dyn std::any::Any> {
    move |link: &Link| -> Box<dyn std::any::Any> {
        let dev = &link.edge_if;
        link.edge
            .command("ethtool")
            .args(["-K", dev, "gro", "on"])
            .output()
            .unwrap();
        let rules = format!(
            "table netdev bench {{\n{decls}\n chain ingress {{\n  type filter hook ingress device \"{dev}\" priority 0;\n  {rule}\n }}\n}}\n"
        );
        let out = link
            .edge
            .command("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(rules.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(
            out.status.success(),
            "nft rules: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Box::new(())
    }
}

/// xdp-filter on the edge, dropping the one source `addr`.
pub fn xdp_filter(addr: String) -> impl FnOnce(&Link) -> Box<dyn std::any::Any> {
    move |link: &Link| -> Box<dyn std::any::Any> {
        let dev = link.edge_if.clone();
        let ok = link
            .edge
            .command("xdp-filter")
            .args(["load", "-m", "native", &dev])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "xdp-filter load: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let ok = link
            .edge
            .command("xdp-filter")
            .args(["ip", "-m", "src", &addr])
            .output()
            .unwrap();
        assert!(
            ok.status.success(),
            "xdp-filter ip: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        struct Unload(String, String);
        impl Drop for Unload {
            fn drop(&mut self) {
                let _ = Command::new("nsenter")
                    .arg(format!("--net=/run/netns/{}", self.0))
                    .args(["--", "xdp-filter", "unload", &self.1])
                    .output();
            }
        }
        Box::new(Unload(link.edge.name().to_string(), dev))
    }
}

pub fn run(opts: &Opts, kind: Kind) {
    eprintln!("drop rate on veth ({} s per path)", opts.veth_secs);
    let mut rows = Vec::new();
    let floor = rate(opts, kind, "198.18.9.9", trivial, xdp_drops);
    rows.push(Row {
        path: "trivial XDP_DROP (floor)".into(),
        value: floor,
        ratio: 1.0,
        target: "",
        met: None,
    });

    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let blocked = rate(
        opts,
        kind,
        &big_host,
        rampart(big.clone(), None, None),
        xdp_drops,
    );
    let nft = rate(
        opts,
        kind,
        &big_host,
        nftables(String::new(), format!("ip saddr {big_host} counter drop")),
        nft_counter,
    );
    let xdp_filter = rate(
        opts,
        kind,
        &big_host,
        xdp_filter(big_host.clone()),
        xdp_drops,
    );
    let limited = rate(
        opts,
        kind,
        "198.18.9.9",
        rampart(vec!["192.0.2.7".parse().unwrap()], limit(1000, 1000), None),
        xdp_drops,
    );
    let mut add = |path: &str, mpps: f64, min: Option<(f64, &'static str)>| {
        rows.push(Row {
            path: path.into(),
            value: mpps,
            ratio: mpps / floor,
            target: min.map_or("", |m| m.1),
            met: min.map(|m| mpps / floor >= m.0),
        });
    };
    add(
        "rampart, blocklisted source (100,000-entry list)",
        blocked,
        Some((0.85, ">= 0.85x")),
    );
    add(
        "rampart, one source over its packet limit",
        limited,
        Some((0.5, ">= 0.5x")),
    );
    add("xdp-filter, same source (exact address)", xdp_filter, None);
    add("nftables netdev ingress drop, same source", nft, None);
    table(
        &format!("### Drop rate on veth (Mpps, {})", kind.describe()),
        "Mpps",
        &rows,
    );
    println!("| comparison | ratio | target | met |\n|---|---:|---|---|");
    let vs = |name: &str, ratio: f64, min: f64| {
        println!(
            "| rampart blocklist drop vs {name} | {ratio:.2}x | >= {min}x | {} |",
            if ratio >= min { "yes" } else { "**no**" }
        );
    };
    vs("nftables", blocked / nft, 2.5);
    vs("xdp-filter", blocked / xdp_filter, 1.0);
    println!();
}
