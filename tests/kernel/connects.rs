//! The XDP benchmark's real client (`tests::connects`): one address opening
//! connection after connection to one server port must not run out of
//! ephemeral ports, or the benchmark measures the client's port search
//! instead of the path (the connections section's collapse of
//! 2026-12-07: 0.01-0.10x of the no-flood rate with any filter, the
//! trivial one included).

use std::{
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

use socket2::{Domain, Protocol, Socket, Type};
use tests::{
    connects::{Close, Connects, connect_loop},
    netns::Link,
    privilege::require_root,
};

const SERVER: &str = "198.18.0.1:80";
/// Ephemeral ports the client gets (its namespace's range), far fewer than
/// the connections it opens.
const PORTS: u64 = 500;
const CONNECTIONS: u64 = 3 * PORTS;

/// `CONNECTIONS` connections from a client with `PORTS` ephemeral ports,
/// closed as `close` says, to a listener that never accepts (so the server
/// never closes first and every FIN-closed port stays taken).
fn connect_many(close: Close) -> Connects {
    let link = Link::new("cn");
    link.edge_addr("198.18.0.1/24");
    link.client_addr("198.18.0.2/24");
    link.client
        .command("sysctl")
        .args([
            "-qw",
            &format!("net.ipv4.ip_local_port_range=41000 {}", 41000 + PORTS - 1),
        ])
        .output()
        .unwrap();
    let _listener = link.edge.run(|| {
        let addr: SocketAddr = SERVER.parse().unwrap();
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.bind(&addr.into()).unwrap();
        s.listen(4096).unwrap();
        TcpListener::from(s)
    });
    let server: SocketAddr = SERVER.parse().unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    link.client
        .run(move || connect_loop(server, end, CONNECTIONS, close))
}

#[test]
fn one_client_address_opens_more_connections_than_it_has_ports() {
    if !require_root("one_client_address_opens_more_connections_than_it_has_ports") {
        return;
    }
    let reset = connect_many(Close::Reset);
    assert_eq!(
        (reset.done, reset.failed),
        (CONNECTIONS, 0),
        "closed with a reset, every connection frees its port at once"
    );
    // What the benchmark's client did before: with FIN closes the ports run
    // out after about PORTS connections and connect fails from then on.
    let fin = connect_many(Close::Fin);
    assert!(
        fin.done <= PORTS && fin.failed >= CONNECTIONS - PORTS,
        "FIN closes keep each port: {} done, {} failed",
        fin.done,
        fin.failed
    );
}
