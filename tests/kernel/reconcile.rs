//! The kernel's config map has one writer, which never exposes an
//! intermediate state (issue 15): with `limit set pps` in force, the
//! kernel never enforces the configured limit instead, not for a moment
//! of a reload (the TOML rate used to be written first and the CLI's after
//! it) nor of a restart (the new daemon wrote the TOML rate into the
//! pinned map while the old program still enforced it). A thread reads the
//! pinned map all through 30 reloads and a restart.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use proxy_user::filter::FilterMaps;
use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
};

/// GCRA interval of 10 packets a second, as `limit set pps --rate 10` writes it.
const CLI_INTERVAL_NS: u64 = 100_000_000;

fn config(iface: &str, pins: &Path, dir: &Path, n: usize) -> String {
    format!(
        "{}pps = {{ rate = 100000 }}\n\n{}",
        filter_section(iface, pins, &[&format!("198.51.100.{n}")]),
        control_section(dir)
    )
}

fn start(link: &Link, path: &Path, dir: &Path) -> Daemon {
    let daemon = Daemon::start(&link.edge, path, &link.edge_if);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(dir.join("control.sock")).is_err() {
        assert!(
            Instant::now() < deadline,
            "no control socket:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

#[test]
fn the_kernel_never_enforces_the_configured_limit_over_the_clis() {
    if !require_root("the_kernel_never_enforces_the_configured_limit_over_the_clis") {
        return;
    }
    let link = Link::new("dmn15rl");
    let pins = PinDir::new("dmn15rl");
    let dir = tests::scratch::Scratch::new("dmn15rl");
    let dir: &std::path::Path = &dir;
    let path = dir.join("rampart.toml");
    std::fs::write(&path, config(&link.edge_if, pins.path(), dir, 0)).unwrap();
    let daemon = start(&link, &path, dir);
    let rampart = |args: &[&str]| {
        let mut all = vec!["-c", path.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&link.edge, &all);
        assert!(ok, "rampart {args:?}: {err}");
        out
    };
    rampart(&["limit", "set", "pps", "--rate", "10", "--burst", "50"]);
    let maps = FilterMaps::open(pins.path()).unwrap();
    assert_eq!(maps.config().unwrap().pps_interval_ns, CLI_INTERVAL_NS);

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut reads, mut wrong) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let interval = maps.config().unwrap().pps_interval_ns;
                if interval != CLI_INTERVAL_NS {
                    wrong.push(interval);
                }
                reads += 1;
            }
            (reads, wrong)
        })
    };
    for n in 1..=30 {
        std::fs::write(&path, config(&link.edge_if, pins.path(), dir, n)).unwrap();
        rampart(&["reload"]);
    }
    // A restart: the pinned program enforces all along.
    daemon.stop();
    let daemon = start(&link, &path, dir);
    rampart(&["limit", "show"]);
    stop.store(true, Ordering::Relaxed);
    let (reads, wrong) = watcher.join().unwrap();
    println!(
        "figure: {reads} reads of the pinned config map over 30 reloads and a restart, {} not the CLI's limit",
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "the kernel enforced pps intervals {:?} over the CLI's {CLI_INTERVAL_NS}",
        &wrong[..wrong.len().min(5)]
    );
    daemon.stop();
}
