//! Zero-downtime operations under steady load: 10 consecutive binary
//! upgrades (`rampart upgrade`) and 100 reloads while clients send GETs over
//! new connections and over keep-alive connections, and a blocked source
//! floods. Target: no failed request, no flood packet reaching userspace, the
//! filter attached throughout.
//!
//! The keep-alive client behaves as HTTP clients do: when the server closes
//! an idle keep-alive connection just as a request goes out (nothing of a
//! response read), the idempotent request is sent again on a new connection
//! (RFC 9112 §9.3.1). Anything else counts as a failure.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tests::{
    backend::named_backend,
    daemon::{Daemon, cli, control_section, filter_section},
    netns::{Link, NetNs},
    pins::PinDir,
    privilege::require_root,
    traffic::{received, send_udp, udp_receiver},
};

const EDGE: &str = "198.18.4.1";
const CLIENT: &str = "198.18.4.10";
const BLOCKED: &str = "198.18.4.66";

/// Daemons started by upgrades are not our children: killed by pid on drop.
#[derive(Default)]
struct Successors(Mutex<Vec<i32>>);

impl Drop for Successors {
    fn drop(&mut self) {
        for pid in self.0.lock().unwrap().iter() {
            // SAFETY: signalling a daemon this test started (through an upgrade).
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

/// Whether `pid` runs (a zombie has exited).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

/// One GET on `stream`; `Ok(true)` for a 200, `Err` when the connection
/// was closed before any byte of a response.
fn request(stream: &mut BufReader<TcpStream>, close: bool) -> Result<bool, ()> {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        if close { "Connection: close\r\n" } else { "" }
    );
    stream
        .get_mut()
        .write_all(head.as_bytes())
        .map_err(|_| ())?;
    let mut status = String::new();
    match stream.read_line(&mut status) {
        Ok(0) | Err(_) => return Err(()),
        Ok(_) => {}
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).unwrap_or(0) == 0 {
            return Ok(false);
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return Ok(false);
    }
    Ok(status.starts_with("HTTP/1.1 200"))
}

fn connect() -> Option<BufReader<TcpStream>> {
    let s = TcpStream::connect_timeout(
        &format!("{EDGE}:8080").parse().unwrap(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    Some(BufReader::new(s))
}

#[test]
fn ten_upgrades_and_a_hundred_reloads_under_load_fail_no_request() {
    if !require_root("ten_upgrades_and_a_hundred_reloads_under_load_fail_no_request") {
        return;
    }
    let link = Link::new("upg");
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    link.client_addr(&format!("{BLOCKED}/24"));
    named_backend(&link.edge, 9001, "app");
    let pins = PinDir::new("upgrade");
    let dir = std::env::temp_dir().join(format!("rampart-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{}\n\
             [http]\ngrace_period = \"5s\"\n\n\
             [upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n[[route]]\nupstream = \"app\"\n",
            filter_section(&link.edge_if, pins.path(), &[BLOCKED]),
            control_section(&dir)
        ),
    )
    .unwrap();
    let first = Daemon::start(&link.edge, &config, &link.edge_if);
    let successors = Successors::default();
    let flood_seen = udp_receiver(&link.edge, &format!("{EDGE}:9"));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    // Failures of the new-connection client and of the keep-alive one.
    let (failed_new, failed_kept) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let retried = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    // New connections, one request each.
    for keep_alive in [false, true] {
        let (stop, ok) = (stop.clone(), ok.clone());
        let failed = if keep_alive {
            failed_kept.clone()
        } else {
            failed_new.clone()
        };
        let retried = retried.clone();
        let ns = link.client.name().to_string();
        load.push(std::thread::spawn(move || {
            NetNs::existing(&ns).enter();
            // Bind the client's address for every connection.
            let deadline = Instant::now() + Duration::from_secs(240);
            let mut conn: Option<BufReader<TcpStream>> = None;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                if !keep_alive {
                    let outcome = connect().map(|mut c| request(&mut c, true));
                    match outcome {
                        Some(Ok(true)) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    continue;
                }
                let reused = conn.is_some();
                let mut c = match conn.take().or_else(connect) {
                    Some(c) => c,
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                match request(&mut c, false) {
                    Ok(true) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        conn = Some(c);
                    }
                    Ok(false) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // Closed before any response on a reused connection: retry once on a new one.
                    Err(()) if reused => {
                        retried.fetch_add(1, Ordering::Relaxed);
                        let again = connect().map(|mut c| (request(&mut c, false), c));
                        match again {
                            Some((Ok(true), c)) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                conn = Some(c);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    Err(()) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let flooding = {
        let (stop, ns) = (stop.clone(), link.client.name().to_string());
        std::thread::spawn(move || {
            let ns = NetNs::existing(&ns);
            let deadline = Instant::now() + Duration::from_secs(240);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                send_udp(&ns, BLOCKED, &format!("{EDGE}:9"), 500);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let ctl = |args: &[&str]| {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(&link.edge, &all)
    };
    std::thread::sleep(Duration::from_millis(500));
    let xdp_attached = || {
        String::from_utf8_lossy(&link.edge.ip(&["link", "show", &link.edge_if]).stdout)
            .contains("xdp")
    };
    for round in 0..10 {
        let (done, out, err) = ctl(&["-j", "upgrade"]);
        assert!(done, "upgrade {round}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        successors
            .0
            .lock()
            .unwrap()
            .push(v["pid"].as_i64().unwrap() as i32);
        assert!(xdp_attached(), "XDP detached after upgrade {round}");
        for _ in 0..10 {
            let (done, _, err) = ctl(&["reload"]);
            assert!(done, "reload: {err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    flooding.join().unwrap();
    let ok = ok.load(Ordering::Relaxed);
    let (failed_new, failed_kept) = (
        failed_new.load(Ordering::Relaxed),
        failed_kept.load(Ordering::Relaxed),
    );
    let failed = failed_new + failed_kept;
    let retried = retried.load(Ordering::Relaxed);
    println!(
        "10 upgrades, 100 reloads: {ok} requests served, {failed} failed \
         ({failed_new} on new connections, {failed_kept} on keep-alive ones; \
         {retried} idempotent retries after an idle keep-alive close)"
    );
    assert_eq!(failed, 0, "{ok} served");
    assert!(ok > 500, "{ok} served");
    assert_eq!(
        received(&flood_seen, BLOCKED),
        0,
        "flood packets reached userspace"
    );
    assert!(xdp_attached());
    // Every daemon but the last has drained and exited.
    let mut handed_over = vec![first.pid()];
    handed_over.extend(&successors.0.lock().unwrap()[..9]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while handed_over.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "an old daemon did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = *successors.0.lock().unwrap().last().unwrap();
    assert!(alive(last), "the last daemon serves");
    drop(first);
    drop(successors);
    let _ = std::fs::remove_dir_all(&dir);
}
