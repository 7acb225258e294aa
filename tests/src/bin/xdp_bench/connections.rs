//! Legitimate new TCP connections per second from one real client, without
//! and during a spoofed SYN flood at the generator's full rate (issue 14's
//! target: >= 90% of the no-flood rate). The edge listens on
//! 198.18.0.1:80 with the filter under test on its veth; the client at
//! 198.18.0.2 opens and closes connections for the measured time while the
//! generator floods the same port with SYNs from random sources in
//! 10.0.0.0/8. The edge answers those sources through the client's
//! namespace, whose `client_rx` drops the answers.
//!
//! By default the machine is split as a multi-queue NIC splits a host:
//! the generator and the edge's receive queue 0 (the flood) on CPU 0, the
//! real client, the server's acceptor and their packets on CPU 1 and queue
//! 1 (threads pinned, transmit queues picked by XPS), in the no-flood
//! reference as in every flood row, and the section's threads and the
//! generator's at the highest CPU share (`Favoured`), so other sessions on
//! the machine do not decide the figures. `--shared-queue` leaves the
//! client's threads and flows to the scheduler and the flows' hashes: about
//! half its packets then share the flood's ring and CPU (a NIC whose RSS
//! spreads a flood over every queue), and a filter that cannot take the
//! whole flood off that ring loses the real client's packets with it.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};
use tests::{
    connects::{Close, Connects, Favoured, connect_loop, favour_this_thread},
    filter::limit,
    netns::{Link, NetNs, sh},
    packet::Frame,
};

use aya::programs::XdpMode;
use proxy_user::config::SynCookieMode;

use crate::{
    Opts, Row, arrivals, feed,
    generator::{Generator, Kind},
    table,
    veth::{edge_mac, filter_of, nftables, rampart, rampart_cookies, xdp_filter},
    xdp,
};

const SERVER: &str = "198.18.0.1:80";

/// Client threads connecting at once: one (with 16 the one acceptor
/// overflowed its queue in the reference).
const CONNECTORS: usize = 1;

/// Pins the calling thread to `cpu` (the real client and the acceptor to
/// CPU 1 unless `--shared-queue`; the generator is always on CPU 0).
fn pin_to(cpu: usize) {
    // SAFETY: sched_setaffinity on this thread with a zeroed, then set, cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Transmit queue `q` of `dev` in `ns` used only by CPU `q` (XPS), so a
/// flow sent from CPU 1 reaches the peer's receive queue 1. Through `ip
/// netns exec`, which mounts the namespace's own /sys: `ns.command`
/// (nsenter) keeps the root namespace's, where `dev` does not exist, and
/// until 2026-12-07 this wrote nothing (its failure ignored), so
/// `--isolate-client` never steered a packet.
fn xps_by_cpu(ns: &NetNs, dev: &str) {
    for q in 0..2 {
        let file = format!("/sys/class/net/{dev}/queues/tx-{q}/xps_cpus");
        let out = sh(
            "ip",
            &[
                "netns",
                "exec",
                ns.name(),
                "sh",
                "-c",
                &format!("echo {} > {file} && cat {file}", 1 << q),
            ],
        );
        let set = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            u32::from_str_radix(set.trim().trim_start_matches('0'), 16).ok(),
            Some(1 << q),
            "{file} in {}: {set}",
            ns.name()
        );
    }
}

/// Connections per second the client completed, with or without a flood,
/// and what the kernel counted meanwhile.
fn rate(
    opts: &Opts,
    kind: Kind,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    flood: bool,
) -> Measured {
    let link = Link::new("vc");
    link.edge_addr("198.18.0.1/24");
    link.client_addr("198.18.0.2/24");
    // The edge answers spoofed SYNs as a real host does: through its
    // gateway (the client, whose `client_rx` drops what is addressed to
    // 10.0.0.0/8). Without a route the kernel drops each flood SYN at the
    // route lookup for its SYN-ACK (counted as ListenDrops), before any
    // request socket, SYN cookie or SYN-ACK: a flood far cheaper for the
    // stack than a real one, which flattered the rows without XDP.
    link.edge
        .ip(&["route", "add", "10.0.0.0/8", "via", "198.18.0.2"]);
    // The client's TCP segments take the edge veth's NAPI ring, as the
    // flood's frames do, in every row: veth queues an skb there only if an
    // XDP program is attached or the sender has TSO off
    // (`veth_skb_is_eligible_for_gro`); otherwise it goes to the
    // receiving CPU's backlog, a second way in that the flood does not
    // use, so the rows without XDP measured a client with its own queue.
    link.client
        .command("ethtool")
        .args(["-K", &link.client_if, "tso", "off"])
        .output()
        .unwrap();
    // Without an XDP program of its own, the edge veth takes redirected
    // frames only with GRO on.
    link.edge
        .command("ethtool")
        .args(["-K", &link.edge_if, "gro", "on"])
        .output()
        .unwrap();
    let guard = setup(&link);
    // The client veth takes frames its peer sends with XDP_TX (SYN cookies)
    // only with an XDP program of its own; this one also drops the answers
    // to the flood's spoofed sources, which would leave a real host.
    let mut client_rx = crate::bench_programs();
    let client_if = link.client_if.clone();
    link.client
        .with(|| xdp(&mut client_rx, "client_rx").attach(&client_if, XdpMode::Driver))
        .expect("client_rx");
    // A deep accept queue and a blocking acceptor: on a loaded machine a
    // polling acceptor falls behind, the queue fills and connects stall for
    // a SYN retransmission (1 s), which measured the acceptor, not the path.
    let listener = link.edge.run(|| {
        let addr: SocketAddr = SERVER.parse().unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.bind(&addr.into()).unwrap();
        s.listen(4096).unwrap();
        TcpListener::from(s)
    });
    let secs = opts.veth_secs;
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    let isolate = !opts.shared_queue;
    if isolate {
        xps_by_cpu(&link.edge, &link.edge_if);
        xps_by_cpu(&link.client, &link.client_if);
    }
    let acceptor = std::thread::spawn(move || {
        favour_this_thread();
        if isolate {
            pin_to(1);
        }
        // Ends on the first connection after `stop` (the wake-up below).
        while !s.load(Ordering::Relaxed) {
            if let Ok((conn, _)) = listener.accept() {
                drop(conn);
            }
        }
    });
    let mut frame = Frame::v4("198.18.9.9", "198.18.0.1")
        .tcp_syn()
        .payload(6)
        .build();
    frame[..6].copy_from_slice(&edge_mac(&link));
    // A TCP checksum the kernel accepts: without it every flood SYN that
    // gets past the filter is dropped as a checksum error and never reaches
    // the listener (the generators keep it right as they spoof).
    tests::segment::fix_tcp_checksum(&mut frame);
    let mut generator = flood.then(|| {
        Generator::new(kind, &link)
            .with_rate(opts.flood_rate)
            .favoured()
    });
    let client = link.client.name().to_string();
    // The same path without the flood first, on the same link, just
    // before: on a loaded machine the rate moves between rows, and this
    // reference moves with it.
    let alone = flood.then(|| connect_for(&client, secs, opts).done as f64 / secs as f64);
    let (done, delta) = std::thread::scope(|scope| {
        if let Some(g) = generator.as_mut() {
            let (link, frame) = (&link, &frame);
            scope.spawn(move || g.run(link, frame, true, secs + 1));
            // Let the flood reach full rate first.
            std::thread::sleep(Duration::from_millis(300));
        }
        let before = arrivals::read(&link);
        let done = connect_for(&client, secs, opts);
        (done, arrivals::Delta::new(&before, &arrivals::read(&link)))
    });
    eprintln!("  {}", delta.describe(secs as f64));
    if let Some(f) = filter_of(guard.as_ref()) {
        let legit = f.maps.source("198.18.0.2".parse().unwrap());
        let verdicts: Vec<String> = f
            .maps
            .verdicts()
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.packets > 0)
            .map(|(i, c)| format!("{} {}", proxy_common::stats::VERDICT_NAMES[i], c.packets))
            .collect();
        eprintln!(
            "  verdicts {}; legit client's source state: {legit:?}",
            verdicts.join(", ")
        );
    }
    stop.store(true, Ordering::Relaxed);
    let server: SocketAddr = SERVER.parse().unwrap();
    link.client
        .run(move || TcpStream::connect_timeout(&server, Duration::from_secs(5)))
        .expect("wake the acceptor");
    acceptor.join().unwrap();
    drop(generator);
    drop(guard);
    drop(client_rx);
    Measured {
        rate: done.done as f64 / secs as f64,
        connects: done,
        alone,
        delta,
    }
}

/// The connections the client in namespace `client` completes in `secs`,
/// from [`CONNECTORS`] threads connecting at once, closing each with a
/// reset unless `opts.fin_close` (see [`tests::connects`]: with FIN closes
/// one address runs out of ephemeral ports within two 3 s loops, and the
/// flood rows measured the same path without the flood on the same link
/// first, so every flood row ran out of them: that, not the flood, was the
/// collapse to 0.01-0.10x of BENCHMARKS.md before 2026-12-07 16:00).
fn connect_for(client: &str, secs: u64, opts: &Opts) -> Connects {
    let end = Instant::now() + Duration::from_secs(secs);
    let (isolate, close) = (!opts.shared_queue, close(opts));
    let threads: Vec<_> = (0..CONNECTORS)
        .map(|_| {
            let ns = NetNs::existing(client);
            std::thread::spawn(move || {
                favour_this_thread();
                if isolate {
                    pin_to(1);
                }
                let server: SocketAddr = SERVER.parse().unwrap();
                ns.run(move || connect_loop(server, end, u64::MAX, close))
            })
        })
        .collect();
    let mut all = Connects::default();
    for t in threads {
        all.merge(t.join().expect("connector"));
    }
    all
}

fn close(opts: &Opts) -> Close {
    if opts.fin_close {
        Close::Fin
    } else {
        Close::Reset
    }
}

/// One row's measurement.
struct Measured {
    /// Connections per second (during the flood, for a flood row).
    rate: f64,
    /// For a flood row: the same path's rate without the flood, measured
    /// on the same link just before.
    alone: Option<f64>,
    /// The client's connect loop in the measured time.
    connects: Connects,
    /// The kernel's counters during the measured time.
    delta: arrivals::Delta,
}

/// The trivial filter: `pass_one` on the edge, passing only the real
/// client's address (and ARP).
fn pass_client(link: &Link) -> Box<dyn std::any::Any> {
    let mut ebpf = crate::bench_programs();
    aya::maps::Array::<_, u32>::try_from(ebpf.map_mut("PASS_SOURCE").unwrap())
        .unwrap()
        .set(0, u32::from_ne_bytes([198, 18, 0, 2]), 0)
        .unwrap();
    let iface = link.edge_if.clone();
    link.edge
        .with(|| xdp(&mut ebpf, "pass_one").attach(&iface, XdpMode::Driver))
        .expect("pass_one");
    Box::new(ebpf)
}

pub fn run(opts: &Opts, kind: Kind) {
    // Builds and tests of other sessions on the machine take this
    // section's CPU otherwise, and a different share in each row.
    let _favoured = Favoured::new();
    eprintln!(
        "legitimate connections during a spoofed SYN flood ({} s per path)",
        opts.veth_secs
    );
    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let none = |_: &Link| -> Box<dyn std::any::Any> { Box::new(()) };
    let reference = rate(opts, kind, none, false);
    let quiet = reference.rate;
    let mut rows = vec![Row {
        path: "no filter, no flood (reference)".into(),
        value: quiet,
        ratio: 1.0,
        target: "",
        met: None,
    }];
    let mut counted = vec![("no filter, no flood".to_string(), reference)];
    let mut add = |path: &str, m: Measured, target: &'static str| {
        rows.push(Row {
            path: path.into(),
            value: m.rate,
            ratio: m.rate / quiet,
            target,
            met: (!target.is_empty()).then_some(m.rate / quiet >= 0.9),
        });
        counted.push((path.replace(", during the flood", ""), m));
    };
    add(
        "no filter (kernel SYN cookies only), during the flood",
        rate(opts, kind, none, true),
        "",
    );
    add(
        "trivial XDP program passing only the client's address (the ceiling of any XDP filter here), during the flood",
        rate(opts, kind, pass_client, true),
        "",
    );
    add(
        "rampart, every check, 100,000 SYN/s per source, SYN cookies off, during the flood",
        rate(
            opts,
            kind,
            rampart(
                big.clone(),
                limit(1_000_000, 1_000_000),
                limit(100_000, 100_000),
            ),
            true,
        ),
        ">= 0.9x",
    );
    add(
        "rampart, every check, 100,000 SYN/s per source, SYN cookies (auto), during the flood",
        rate(
            opts,
            kind,
            rampart_cookies(
                big.clone(),
                limit(100_000, 100_000),
                80,
                SynCookieMode::Auto,
                false,
                100_000_000,
            ),
            true,
        ),
        ">= 0.9x",
    );
    add(
        "rampart, as above with the default SYN-ACK budget (100,000/s), during the flood",
        rate(
            opts,
            kind,
            rampart_cookies(
                big.clone(),
                limit(100_000, 100_000),
                80,
                SynCookieMode::Auto,
                false,
                proxy_user::config::SynCookies::default().synack_rate,
            ),
            true,
        ),
        "",
    );
    add(
        "xdp-filter, one-address list, during the flood",
        rate(opts, kind, xdp_filter(big_host), true),
        "",
    );
    add(
        "nftables netdev ingress, 1,000,000 pps per source, during the flood",
        rate(
            opts,
            kind,
            nftables(
                "  set flood { type ipv4_addr; size 65536; flags dynamic,timeout; timeout 10s; }"
                    .into(),
                // As high as rampart's packet limit here: a lower one
                // would limit the real client (two or more packets per
                // connection), not the flood.
                "update @flood { ip saddr limit rate over 1000000/second } counter drop".into(),
            ),
            true,
        ),
        "",
    );
    table(
        &format!(
            "### Legitimate new TCP connections per second during a spoofed SYN flood (veth, {}, {}; ratio to the no-flood rate)",
            kind.describe(),
            opts.flood_rate
                .map_or("at its full rate".to_string(), |r| format!(
                    "offering {r} SYN/s"
                ))
                + if opts.shared_queue {
                    ", client's packets on the flood's queues (--shared-queue)"
                } else {
                    ", client and server on CPU 1 and queue 1, the flood on CPU 0 and queue 0"
                }
                + if opts.fin_close {
                    ", FIN closes (--fin-close)"
                } else {
                    ""
                }
        ),
        "connections/s",
        &rows,
    );
    delivered(&counted, opts.veth_secs as f64);
}

/// What each row's flood delivered, from the kernel's counters: rows are
/// comparable only where the edge took the same flood, and the ceiling
/// (the trivial program) says what any XDP filter can reach here.
fn delivered(counted: &[(String, Measured)], secs: f64) {
    let ceiling = counted
        .iter()
        .find(|(p, _)| p.starts_with("trivial"))
        .map_or(f64::NAN, |c| c.1.rate);
    println!(
        "What the kernel counted during each row (per second; edge queues 0+1: the generator sends on queue 0)\n"
    );
    println!(
        "| path | same path, no flood (conn/s) | during the flood vs same path without | vs the trivial program | frames the edge took | refused at the edge's ring | kernel SYN cookies sent | listener drops | client connects failed (1 s) | client connect median / p99 (µs) | client thread on a CPU / waiting for one | client TIME_WAIT entered |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let per = |d: &arrivals::Delta, name: &str| {
        d.queues(name)
            .iter()
            .map(|n| format!("{:.0}", *n as f64 / secs))
            .collect::<Vec<_>>()
            .join("+")
    };
    for (path, m) in counted {
        let d = &m.delta;
        let (alone, vs_alone) = m.alone.map_or((String::new(), String::new()), |a| {
            (format!("{a:.0}"), format!("{:.2}x", m.rate / a))
        });
        println!(
            "| {path} | {alone} | {vs_alone} | {:.2}x | {} | {} | {} | {} | {} | {:.0} / {:.0} | {:.0}% / {:.0}% | {} |",
            m.rate / ceiling,
            per(d, "edge.rx_queue_Q_xdp_packets"),
            per(d, "client.tx_queue_Q_xdp_xmit_errors"),
            per(d, "edge.TcpExtSyncookiesSent"),
            per(d, "edge.TcpExtListenDrops"),
            m.connects.failed,
            m.connects.micros(0.5),
            m.connects.micros(0.99),
            m.connects.cpu_shares().0 * 100.0,
            m.connects.cpu_shares().1 * 100.0,
            per(d, "client.TcpExtTW"),
        );
    }
    println!();
}
