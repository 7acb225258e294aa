//! Legitimate new TCP connections per second from one real client, without
//! and during a spoofed SYN flood at the generator's full rate (issue 14's
//! target: >= 90% of the no-flood rate). The edge listens on
//! 198.18.0.1:80 with the filter under test on its veth; the client at
//! 198.18.0.2 opens and closes connections for the measured time while the
//! generator floods the same port with SYNs from random sources in
//! 10.0.0.0/8. The edge's SYN-ACKs to those sources have no route out of
//! its namespace.

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
    filter::limit,
    netns::{Link, NetNs},
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

/// Client threads connecting at once. One, as before: with 16 the
/// reference fell (the one acceptor overflowed its queue) and during the
/// flood every row fell to the same 0.02-0.04x of its own no-flood rate
/// as with one, no connect failing, so the collapse is not the client's
/// one-at-a-time handshakes (BENCHMARKS.md, "Legitimate connections
/// during the flood: what the harness measures").
const CONNECTORS: usize = 1;

/// With `--isolate-client`: the real client, the acceptor and their
/// packets on CPU 1 and receive queue 1, the generator and its flood on
/// CPU 0 and queue 0 (transmit queues picked by XPS), the best case of a
/// multi-queue NIC; without it the scheduler and the flows' hashes place
/// them.
fn pin_to(cpu: usize) {
    // SAFETY: sched_setaffinity on this thread with a zeroed, then set, cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Transmit queue `q` of `dev` in `ns` used only by CPU `q` (XPS), so a
/// flow sent from CPU 1 reaches the peer's receive queue 1.
fn xps_by_cpu(ns: &NetNs, dev: &str) {
    for q in 0..2 {
        ns.command("sh")
            .args([
                "-c",
                &format!(
                    "echo {} > /sys/class/net/{dev}/queues/tx-{q}/xps_cpus",
                    1 << q
                ),
            ])
            .output()
            .unwrap();
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
    let isolate = opts.isolate_client;
    if isolate {
        xps_by_cpu(&link.edge, &link.edge_if);
        xps_by_cpu(&link.client, &link.client_if);
    }
    let acceptor = std::thread::spawn(move || {
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
    let mut generator = flood.then(|| Generator::new(kind, &link).with_rate(opts.flood_rate));
    let client = link.client.name().to_string();
    // The same path without the flood first, on the same link, just
    // before: on a loaded machine the rate moves between rows, and this
    // reference moves with it.
    let alone = flood.then(|| connect_for(&client, secs, isolate).0 as f64 / secs as f64);
    let (done, delta) = std::thread::scope(|scope| {
        if let Some(g) = generator.as_mut() {
            let (link, frame) = (&link, &frame);
            scope.spawn(move || g.run(link, frame, true, secs + 1));
            // Let the flood reach full rate first.
            std::thread::sleep(Duration::from_millis(300));
        }
        let before = arrivals::read(&link);
        let done = connect_for(&client, secs, isolate);
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
        rate: done.0 as f64 / secs as f64,
        failed: done.1,
        alone,
        delta,
    }
}

/// Connections the client in namespace `client` completes in `secs`, and
/// the attempts that failed (no answer within 1 s: a SYN, SYN-ACK or ACK
/// lost on the way, which the kernel would retransmit only at 1 s), from
/// [`CONNECTORS`] threads connecting at once.
fn connect_for(client: &str, secs: u64, isolate: bool) -> (u64, u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..CONNECTORS)
        .map(|_| {
            let ns = NetNs::existing(client);
            std::thread::spawn(move || {
                if isolate {
                    pin_to(1);
                }
                ns.run(move || {
                    let server: SocketAddr = SERVER.parse().unwrap();
                    let (mut done, mut failed) = (0u64, 0u64);
                    while Instant::now() < end {
                        if TcpStream::connect_timeout(&server, Duration::from_secs(1)).is_ok() {
                            done += 1;
                        } else {
                            failed += 1;
                        }
                    }
                    (done, failed)
                })
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("connector"))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// One row's measurement.
struct Measured {
    /// Connections per second (during the flood, for a flood row).
    rate: f64,
    /// For a flood row: the same path's rate without the flood, measured
    /// on the same link just before.
    alone: Option<f64>,
    /// Connection attempts that failed (1 s timeout) in the measured time.
    failed: u64,
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
    eprintln!(
        "legitimate connections during a spoofed SYN flood ({} s per path)",
        opts.veth_secs
    );
    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let none = |_: &Link| -> Box<dyn std::any::Any> { Box::new(()) };
    let Measured {
        rate: quiet,
        failed: quiet_failed,
        delta: quiet_delta,
        ..
    } = rate(opts, kind, none, false);
    let mut rows = vec![Row {
        path: "no filter, no flood (reference)".into(),
        value: quiet,
        ratio: 1.0,
        target: "",
        met: None,
    }];
    let mut counted = vec![(
        "no filter, no flood".to_string(),
        Measured {
            rate: quiet,
            failed: quiet_failed,
            alone: None,
            delta: quiet_delta,
        },
    )];
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
                + if opts.isolate_client {
                    ", client on its own CPU and queue"
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
        "| path | same path, no flood (conn/s) | during the flood vs same path without | vs the trivial program | frames the edge took | refused at the edge's ring | kernel SYN cookies sent | listener drops | client connects failed (1 s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
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
            "| {path} | {alone} | {vs_alone} | {:.2}x | {} | {} | {} | {} | {} |",
            m.rate / ceiling,
            per(d, "edge.rx_queue_Q_xdp_packets"),
            per(d, "client.tx_queue_Q_xdp_xmit_errors"),
            per(d, "edge.TcpExtSyncookiesSent"),
            per(d, "edge.TcpExtListenDrops"),
            m.failed,
        );
    }
    println!();
}
