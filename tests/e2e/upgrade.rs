//! Zero-downtime operations under steady load: 10 consecutive binary
//! upgrades (`rampart upgrade`) and 100 reloads while clients send GETs over
//! new connections and over keep-alive connections, and a blocked source
//! floods. Target: no failed request, no flood packet reaching userspace, the
//! filter attached throughout.
//!
//! The keep-alive client retries an idempotent request once when the server
//! closed the idle connection just as it went out, as HTTP clients do
//! (see `tests::load`); anything else counts as a failure.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tests::{
    backend::named_backend,
    daemon::{Daemon, cli, control_section, filter_section},
    load::{Load, Plan},
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

/// `client_rx` on the client veth: a veth takes the frames its peer sends
/// with XDP_TX (SYN cookies) only with an XDP program of its own.
fn client_rx(link: &Link) -> aya::Ebpf {
    let mut ebpf = aya::Ebpf::load(proxy_user::filter::object::BENCH).unwrap();
    let prog: &mut aya::programs::Xdp = ebpf.program_mut("client_rx").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let iface = link.client_if.clone();
    link.client
        .with(|| prog.attach(&iface, aya::programs::XdpMode::Driver))
        .expect("client_rx");
    ebpf
}

/// Whether `pid` runs (a zombie has exited).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z'))
}

#[test]
fn ten_upgrades_and_a_hundred_reloads_under_load_fail_no_request() {
    if !require_root("ten_upgrades_and_a_hundred_reloads_under_load_fail_no_request") {
        return;
    }
    upgrades_under_load("upg", false);
}

/// The same with SYN cookies answering every new connection's SYN: each
/// new daemon keeps the cookie key and takes the tc program's link over,
/// so a handshake started under one daemon completes under the next.
#[test]
fn upgrades_and_reloads_with_syn_cookies_on_fail_no_request() {
    if !require_root("upgrades_and_reloads_with_syn_cookies_on_fail_no_request") {
        return;
    }
    upgrades_under_load("upgc", true);
}

fn upgrades_under_load(tag: &str, syn_cookies: bool) {
    let link = Link::new(tag);
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    link.client_addr(&format!("{BLOCKED}/24"));
    named_backend(&link.edge, 9001, "app");
    let pins = PinDir::new(tag);
    let dir = tests::scratch::Scratch::new(tag);
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{}\n{}\n\
             [http]\ngrace_period = \"5s\"\n\n\
             [upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n[[route]]\nupstream = \"app\"\n",
            filter_section(&link.edge_if, pins.path(), &[BLOCKED]),
            if syn_cookies {
                // The client veth runs an XDP program (below): it takes XDP_TX frames.
                "[filter.syn_cookies]\nmode = \"on\"\non_veth = true\n"
            } else {
                ""
            },
            control_section(&dir)
        ),
    )
    .unwrap();
    let first = Daemon::start(&link.edge, &config, &link.edge_if);
    let _client_rx = syn_cookies.then(|| client_rx(&link));
    let successors = Successors::default();
    let flood_seen = udp_receiver(&link.edge, &format!("{EDGE}:9"));

    let stop = Arc::new(AtomicBool::new(false));
    let mut plan = Plan::steady(&format!("{EDGE}:8080"), "/");
    plan.limit = Duration::from_secs(tests::scaled(240, 900));
    let load = Load::start(&link.client, plan);
    let flooding = {
        let (stop, ns) = (stop.clone(), link.client.name().to_string());
        std::thread::spawn(move || {
            let ns = NetNs::existing(&ns);
            let deadline = Instant::now() + Duration::from_secs(tests::scaled(240, 900));
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
    let rounds = tests::scaled(10, 50);
    for round in 0..rounds {
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
    let report = load.stop();
    flooding.join().unwrap();
    println!(
        "{rounds} upgrades, {} reloads: {}",
        rounds * 10,
        report.summary()
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
    if syn_cookies {
        let pin = pins.path().to_str().unwrap();
        let (_, out, _) = cli(
            &link.edge,
            &["-j", "map", "dump", "syn_stats", "--pin-dir", pin],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let accepted = v[0]["value"].as_u64().unwrap_or(0);
        println!("{accepted} connections made through SYN cookies");
        assert!(
            accepted > 100,
            "new connections went through cookies: {out}"
        );
    }
    assert!(report.ok > 500, "{}", report.summary());
    assert_eq!(
        received(&flood_seen, BLOCKED),
        0,
        "flood packets reached userspace"
    );
    assert!(xdp_attached());
    // Every daemon but the last has drained and exited.
    let mut handed_over = vec![first.pid()];
    handed_over.extend(&successors.0.lock().unwrap()[..rounds - 1]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while handed_over.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "an old daemon did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = *successors.0.lock().unwrap().last().unwrap();
    assert!(alive(last), "the last daemon serves");
    drop(first);
    drop(successors);
    drop(dir);
}
