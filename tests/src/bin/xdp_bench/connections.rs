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
    Opts, Row, feed,
    generator::{Generator, Kind},
    table,
    veth::{edge_mac, nftables, rampart, rampart_cookies, xdp_filter},
    xdp,
};

const SERVER: &str = "198.18.0.1:80";

/// Connections per second the client completed, with or without a flood.
fn rate(
    opts: &Opts,
    kind: Kind,
    setup: impl FnOnce(&Link) -> Box<dyn std::any::Any>,
    flood: bool,
) -> f64 {
    let link = Link::new("vc");
    link.edge_addr("198.18.0.1/24");
    link.client_addr("198.18.0.2/24");
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
    let acceptor = std::thread::spawn(move || {
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
    let mut generator = flood.then(|| Generator::new(kind, &link));
    let client = link.client.name().to_string();
    let done = std::thread::scope(|scope| {
        if let Some(g) = generator.as_mut() {
            let (link, frame) = (&link, &frame);
            scope.spawn(move || g.run(link, frame, true, secs + 1));
            // Let the flood reach full rate first.
            std::thread::sleep(Duration::from_millis(300));
        }
        NetNs::existing(&client).run(move || {
            let server: SocketAddr = SERVER.parse().unwrap();
            let end = Instant::now() + Duration::from_secs(secs);
            let mut done = 0u64;
            while Instant::now() < end {
                if TcpStream::connect_timeout(&server, Duration::from_secs(1)).is_ok() {
                    done += 1;
                }
            }
            done
        })
    });
    stop.store(true, Ordering::Relaxed);
    let server: SocketAddr = SERVER.parse().unwrap();
    link.client
        .run(move || TcpStream::connect_timeout(&server, Duration::from_secs(5)))
        .expect("wake the acceptor");
    acceptor.join().unwrap();
    drop(generator);
    drop(guard);
    drop(client_rx);
    done as f64 / secs as f64
}

pub fn run(opts: &Opts, kind: Kind) {
    eprintln!(
        "legitimate connections during a spoofed SYN flood ({} s per path)",
        opts.veth_secs
    );
    let big = feed(95_000, 5_000);
    let big_host = big.iter().find(|c| c.is_host()).unwrap().addr().to_string();
    let none = |_: &Link| -> Box<dyn std::any::Any> { Box::new(()) };
    let quiet = rate(opts, kind, none, false);
    let mut rows = vec![Row {
        path: "no filter, no flood (reference)".into(),
        value: quiet,
        ratio: 1.0,
        target: "",
        met: None,
    }];
    let mut add = |path: &str, value: f64, target: &'static str| {
        rows.push(Row {
            path: path.into(),
            value,
            ratio: value / quiet,
            target,
            met: (!target.is_empty()).then_some(value / quiet >= 0.9),
        });
    };
    add(
        "no filter (kernel SYN cookies only), during the flood",
        rate(opts, kind, none, true),
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
            ),
            true,
        ),
        ">= 0.9x",
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
            "### Legitimate new TCP connections per second during a spoofed SYN flood (veth, {}; ratio to the no-flood rate)",
            kind.describe()
        ),
        "connections/s",
        &rows,
    );
}
