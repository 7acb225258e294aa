//! A ban, or a list change that refuses a source, closes that source's
//! open keep-alive connections within a second, in both modes: without
//! XDP (the gate would otherwise keep serving them) and with XDP (the
//! sockets would otherwise linger until their timeouts).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
};

const EDGE: &str = "198.18.8.1";
/// Banned from the CLI.
const BANNED: &str = "198.18.8.10";
/// In the configuration's blocklist, allowlisted from the CLI, then not.
const UNALLOWED: &str = "198.18.8.66";
/// Banned by escalation.
const SCANNER: &str = "198.18.8.30";
/// Added to the configuration's blocklist by a reload.
const RELOADED: &str = "198.18.8.40";
/// Never refused.
const BYSTANDER: &str = "198.18.8.20";

/// A keep-alive connection from `src` (in the client namespace) with one
/// request answered.
fn keep_alive(link: &Link, src: &str) -> TcpStream {
    let src: SocketAddr = format!("{src}:0").parse().unwrap();
    let mut s = link.client.run(move || {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.bind(&src.into()).unwrap();
        let to: SocketAddr = format!("{EDGE}:8080").parse().unwrap();
        socket
            .connect_timeout(&to.into(), Duration::from_secs(2))
            .unwrap();
        TcpStream::from(socket)
    });
    request(&mut s);
    s
}

fn request(s: &mut TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"ok") {
        let n = s.read(&mut buf).expect("answered");
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
}

/// How long after `since` the server closed `s` (panics past 3 s).
fn closed(what: &str, s: &mut TcpStream, since: Instant) -> Duration {
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => since.elapsed(),
        Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => since.elapsed(),
        Ok(n) => panic!("{what}: {n} bytes instead of a close"),
        Err(_) => panic!("{what}: still open 3 s after it was refused"),
    }
}

fn check(tag: &str, xdp: bool) {
    let link = Link::new(tag);
    link.edge_addr(&format!("{EDGE}/24"));
    for a in [BANNED, UNALLOWED, SCANNER, RELOADED, BYSTANDER] {
        link.client_addr(&format!("{a}/24"));
    }
    let pins = PinDir::new(tag);
    let dir = tests::scratch::Scratch::new(tag);
    let config = dir.join("rampart.toml");
    let write_config = |block: &[&str]| {
        let filter = if xdp {
            filter_section(&link.edge_if, pins.path(), block)
        } else {
            let block: Vec<String> = block.iter().map(|b| format!("\"{b}\"")).collect();
            format!(
                "[filter]\ninterfaces = []\nblock = [{}]\n",
                block.join(", ")
            )
        };
        std::fs::write(
            &config,
            format!(
                "{filter}\n{}\n\
             [escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n\
             [[route]]\npath_regex = '\\.env$'\nrespond = 404\nescalate = \"scanners\"\n\n\
             [[route]]\nrespond = 200\nbody = \"ok\"\n",
                control_section(&dir)
            ),
        )
        .unwrap();
    };
    write_config(&["198.18.8.64/26"]);
    let daemon = if xdp {
        Daemon::start(&link.edge, &config, &link.edge_if)
    } else {
        Daemon::serving(&link.edge, &config, &format!("{EDGE}:8080"))
    };
    // The control socket answers once the daemon has restored its state.
    let socket = dir.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "no control socket:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ctl = |args: &[&str]| {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, _, err) = cli(&link.edge, &all);
        assert!(ok, "rampart {args:?}: {err}");
    };
    ctl(&["allow", "add", UNALLOWED]);
    let mut banned = keep_alive(&link, BANNED);
    let mut unallowed = keep_alive(&link, UNALLOWED);
    let mut scanner = keep_alive(&link, SCANNER);
    let mut reloaded = keep_alive(&link, RELOADED);
    let mut bystander = keep_alive(&link, BYSTANDER);
    // One of them parked in the lot (idle past a second), one in its task.
    std::thread::sleep(Duration::from_millis(1200));
    request(&mut unallowed);

    let at = Instant::now();
    ctl(&["block", "add", BANNED, "--reason", "test"]);
    let ban = closed("banned", &mut banned, at);
    let at = Instant::now();
    ctl(&["allow", "del", UNALLOWED]);
    let unallow = closed("no longer allowlisted", &mut unallowed, at);
    // Escalation: four 404s on other connections pass the rule.
    for _ in 0..4 {
        let status =
            tests::backend::curl_status(&link.client, SCANNER, &format!("http://{EDGE}:8080/.env"));
        assert_eq!(status, "404");
    }
    let at = Instant::now();
    let escalated = closed("escalation-banned", &mut scanner, at);
    // A reload that adds the source to the configuration's blocklist.
    write_config(&["198.18.8.64/26", RELOADED]);
    let at = Instant::now();
    ctl(&["reload"]);
    let reload = closed("blocklisted by a reload", &mut reloaded, at);
    let mode = if xdp { "XDP" } else { "userspace" };
    println!(
        "{mode}: banned source's connection closed {ban:?} after `block add`, a blocklisted one's \
         {unallow:?} after `allow del`, an escalation-banned one's {escalated:?} after its 4th 404, \
         a newly blocklisted one's {reload:?} after `reload`"
    );
    assert!(reload < Duration::from_secs(1), "{reload:?}");
    assert!(ban < Duration::from_secs(1), "{ban:?}");
    assert!(escalated < Duration::from_secs(1), "{escalated:?}");
    assert!(unallow < Duration::from_secs(1), "{unallow:?}");
    request(&mut bystander);
    drop(daemon);
    drop(dir);
}

#[test]
fn without_xdp_a_ban_closes_open_connections() {
    if !require_root("without_xdp_a_ban_closes_open_connections") {
        return;
    }
    check("kickgate", false);
}

#[test]
fn with_xdp_a_ban_closes_open_connections() {
    if !require_root("with_xdp_a_ban_closes_open_connections") {
        return;
    }
    check("kickxdp", true);
}
