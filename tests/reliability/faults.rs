//! Faults under steady load: an upstream worker killed and restarted, an
//! upstream that hangs, every upstream down, the access log's disk full, and
//! a certificate, key or config replaced with garbage before a reload.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use tests::{
    backend::{http_get, named_backend, uvicorn},
    load::{Load, Plan},
    privilege::require_root,
    process::{open_fds, rss_kib},
    scaled,
};

use crate::support::{EDGE, Edge, ONE_APP, figure};

const FOUR_WORKERS: &str = "[upstream.app]\n\
    servers = [\"127.0.0.1:8001\", \"127.0.0.1:8002\", \"127.0.0.1:8003\", \"127.0.0.1:8004\"]\n\
    max_fails = 1\nfail_timeout = \"2s\"\n\
    health_check = { path = \"/health\", interval = \"500ms\", fails = 1, passes = 1 }\n\n\
    [[route]]\nupstream = \"app\"\n";

/// One of four Uvicorn workers is SIGKILLed under load, then restarted.
/// Target: no failed request; the figure is the time until the restarted
/// worker gets traffic again.
#[test]
fn a_killed_worker_fails_no_request_and_gets_traffic_back() {
    if !require_root("a_killed_worker_fails_no_request_and_gets_traffic_back") {
        return;
    }
    let mut edge = Edge::new("kill");
    let mut workers: Vec<_> = (8001..=8004)
        .map(|port| uvicorn(&edge.ns, port, &edge.dir))
        .collect();
    edge.start(FOUR_WORKERS);
    let mut plan = Plan::steady(EDGE, "/api/load");
    plan.keep_alive = 2;
    let load = Load::start(&edge.ns, plan);
    std::thread::sleep(Duration::from_secs(1));
    assert!(load.ok() > 0, "no traffic before the kill");

    let victim = "127.0.0.1:8002";
    workers[1].kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(10);
    while edge.server(victim)["state"] != "down" {
        assert!(Instant::now() < deadline, "{victim} never marked down");
        std::thread::sleep(Duration::from_millis(50));
    }
    let marked_down = killed.elapsed();
    std::thread::sleep(Duration::from_secs(scaled(2, 30)));

    let restarted = Instant::now();
    workers[1] = uvicorn(&edge.ns, 8002, &edge.dir);
    let listening = restarted.elapsed();
    let before = edge.server(victim)["requests"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge.server(victim)["requests"].as_u64().unwrap() <= before {
        assert!(
            Instant::now() < deadline,
            "{victim} gets no traffic after its restart"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = restarted.elapsed() - listening;
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    figure(
        "worker killed and restarted",
        format!(
            "{}; marked down {marked_down:?} after the kill; after the restart it \
             listened in {listening:?} and got traffic {back:?} later",
            report.summary()
        ),
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.ok > 100, "{}", report.summary());
}

/// A server that accepts connections and never answers.
fn hanging_server(ns: &tests::netns::NetNs, port: u16) {
    let listener = ns.run(move || std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            // Bounded: a hang test opens a handful.
            if held.len() < 10_000 {
                held.push(stream);
            }
        }
    });
}

/// An upstream that stops answering without closing. Target: a request
/// that only it can serve gets 504 within `read_timeout`; under load the
/// other servers take over (idempotent requests are retried) and no
/// request fails.
#[test]
fn a_hanging_upstream_is_a_504_in_time_and_the_others_take_the_load() {
    if !require_root("a_hanging_upstream_is_a_504_in_time_and_the_others_take_the_load") {
        return;
    }
    let mut edge = Edge::new("hang");
    named_backend(&edge.ns, 9001, "a");
    named_backend(&edge.ns, 9002, "b");
    hanging_server(&edge.ns, 9009);
    edge.start(
        "[upstream.app]\nservers = [\"127.0.0.1:9001\", \"127.0.0.1:9002\", \"127.0.0.1:9009\"]\n\
         read_timeout = \"1s\"\nmax_fails = 1\nfail_timeout = \"300s\"\n\n\
         [upstream.stuck]\nservers = [\"127.0.0.1:9009\"]\nread_timeout = \"1s\"\n\n\
         [[route]]\npath = \"/stuck/\"\nupstream = \"stuck\"\n\n\
         [[route]]\nupstream = \"app\"\n",
    );
    let started = Instant::now();
    let answer = http_get(&edge.ns, EDGE, "/stuck/x").unwrap_err();
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_millis(1500),
        "504 after {took:?}, read_timeout is 1 s"
    );

    let mut plan = Plan::steady(EDGE, "/");
    plan.keep_alive = 2;
    let load = Load::start(&edge.ns, plan);
    std::thread::sleep(Duration::from_secs(scaled(4, 60)));
    let report = load.stop();
    let hung = edge.server("127.0.0.1:9009");
    let slow = report
        .latencies
        .iter()
        .filter(|l| **l >= Duration::from_millis(900))
        .count();
    figure(
        "upstream hang",
        format!(
            "alone: 504 after {took:?} (read_timeout 1 s); in a group under load: {}; \
             {slow} requests met the hang and were answered by another server after \
             read_timeout; the hung server is {} after {} failure(s)",
            report.summary(),
            hung["state"],
            hung["failures"]
        ),
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert_eq!(hung["state"], "down", "{hung}");
    assert!(
        report.latencies.last().copied().unwrap_or_default() < Duration::from_millis(1500),
        "a request waited longer than read_timeout plus a retry: {}",
        report.summary()
    );
}

/// Every server of the group refuses connections. Target: 502 within 50 ms,
/// and no pile-up: the daemon's memory and open files come back.
#[test]
fn all_upstreams_down_is_a_quick_502_without_pile_up() {
    if !require_root("all_upstreams_down_is_a_quick_502_without_pile_up") {
        return;
    }
    let mut edge = Edge::new("down");
    edge.start(
        "[upstream.app]\nservers = [\"127.0.0.1:9101\", \"127.0.0.1:9102\"]\n\n\
         [[route]]\nupstream = \"app\"\n",
    );
    let pid = edge.pid();
    // Warm up (the first requests size buffers and pools), then measure.
    let mut warm = Plan::steady(EDGE, "/");
    warm.limit = Duration::from_secs(1);
    Load::start(&edge.ns, warm).stop();
    std::thread::sleep(Duration::from_millis(300));
    let (rss_before, fds_before) = (rss_kib(pid), open_fds(pid));

    let mut plan = Plan::steady(EDGE, "/");
    plan.keep_alive = 4;
    plan.new_connections = 2;
    let load = Load::start(&edge.ns, plan);
    std::thread::sleep(Duration::from_secs(scaled(4, 60)));
    let report = load.stop();
    std::thread::sleep(Duration::from_millis(500));
    let (rss_after, fds_after) = (rss_kib(pid), open_fds(pid));
    let answered_502 = report.statuses.get(&502).copied().unwrap_or(0);
    let p99 = report.percentile(99.0);
    figure(
        "all upstreams down",
        format!(
            "{answered_502} requests answered 502, p50 {:?}, p99 {p99:?}, max {:?}; \
             RSS {rss_before} KiB before, {rss_after} KiB after; open files {fds_before} \
             before, {fds_after} after",
            report.percentile(50.0),
            report.latencies.last().copied().unwrap_or_default()
        ),
    );
    assert!(answered_502 > 1000, "{}", report.summary());
    assert_eq!(
        answered_502,
        report.failed(),
        "every failure is a 502: {}",
        report.summary()
    );
    assert!(p99 < Duration::from_millis(50), "{}", report.summary());
    assert!(
        fds_after <= fds_before + 2,
        "open files {fds_before} -> {fds_after}"
    );
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS {rss_before} -> {rss_after} KiB"
    );
}

/// A small tmpfs, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// The access log's disk fills up under load. Target: serving goes on (no
/// failed request), and the condition is reported in the log and in
/// `/metrics`, then cleared once there is room again.
#[test]
fn a_full_log_disk_stops_logging_not_serving() {
    if !require_root("a_full_log_disk_stops_logging_not_serving") {
        return;
    }
    let mut edge = Edge::new("full");
    named_backend(&edge.ns, 9001, "app");
    let logs = edge.dir.join("logs");
    let _tmpfs = Tmpfs::mount(&logs, "256k");
    // Nearly full from the start: the log has a few KiB of room.
    let filler = logs.join("filler");
    std::fs::write(&filler, vec![0u8; 248 << 10]).unwrap();
    edge.start(&format!(
        "[http]\naccess_log = \"{}\"\n\n\
         [upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n[[route]]\nupstream = \"app\"\n",
        logs.join("access.log").display()
    ));
    // Paced, so that once the filler is gone the log has room for a while.
    let mut plan = Plan::steady(EDGE, "/");
    plan.pace = Some(Duration::from_millis(10));
    let load = Load::start(&edge.ns, plan);
    edge.wait_for_metric(
        "rampart_access_log_failing",
        1.0,
        Duration::from_secs(15),
        "the full disk is never reported",
    );
    std::thread::sleep(Duration::from_secs(scaled(2, 30)));
    // Lines are dropped once the writer's buffer (64 KiB, about 3 s of this
    // load) is full too: wait for that rather than for a fixed time.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dropped = edge.metric("rampart_access_log_dropped_lines_total");
    while dropped == 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        dropped = edge.metric("rampart_access_log_dropped_lines_total");
    }
    let during = load.ok();
    // Room again: logging resumes by itself.
    std::fs::remove_file(&filler).unwrap();
    edge.wait_for_metric(
        "rampart_access_log_failing",
        0.0,
        Duration::from_secs(10),
        "logging never resumes",
    );
    let report = load.stop();
    let log = edge.log_text();
    figure(
        "log disk full",
        format!(
            "{}; {dropped} log lines dropped while full; requests served meanwhile: \
             {during}; reported by rampart_access_log_failing and the log, cleared \
             when room came back",
            report.summary()
        ),
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(dropped > 0.0);
    assert!(log.contains("No space left on device"), "{log}");
    assert!(log.contains("writing again"), "{log}");
}

/// Certificate, key and configuration files replaced with garbage, each
/// followed by a reload. Target: every reload is refused with an error that
/// names the file, and the old certificate keeps being served.
#[test]
fn garbage_certificate_key_or_config_keeps_the_old_one_serving() {
    if !require_root("garbage_certificate_key_or_config_keeps_the_old_one_serving") {
        return;
    }
    let mut edge = Edge::new("garb");
    named_backend(&edge.ns, 9001, "app");
    tests::certs::self_signed(&edge.dir, "site");
    let config = "[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
                  [[listener]]\nbind = \"127.0.0.1:8443\"\n\
                  tls = { cert = \"site.crt\", key = \"site.key\" }\n\n\
                  [[route]]\nupstream = \"app\"\n";
    edge.start(config);
    let https = || {
        let out = edge
            .ns
            .command("curl")
            .args(["-sk", "--max-time", "5", "https://127.0.0.1:8443/"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(https(), "app");
    let good_cert = std::fs::read(edge.dir.join("site.crt")).unwrap();
    let good_key = std::fs::read(edge.dir.join("site.key")).unwrap();
    let load = Load::start(&edge.ns, Plan::steady(EDGE, "/"));

    let mut refused = Vec::new();
    for (file, garbage) in [
        (
            "site.crt",
            &b"-----BEGIN CERTIFICATE-----\nnot base64!\n"[..],
        ),
        ("site.key", &b"\x00\x01garbage"[..]),
        ("rampart.toml", &b"[[listener]\nbind = 80"[..]),
    ] {
        let path = edge.dir.join(file);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, garbage).unwrap();
        let (ok, _, err) = edge.cli(&["reload"]);
        assert!(!ok, "a reload with a garbage {file} succeeded");
        assert!(err.contains(file), "the error does not name {file}: {err}");
        assert_eq!(https(), "app", "the old certificate stopped serving");
        refused.push(format!(
            "{file}: {}",
            err.trim().lines().next().unwrap_or("")
        ));
        std::fs::write(&path, good).unwrap();
    }
    assert_eq!(std::fs::read(edge.dir.join("site.crt")).unwrap(), good_cert);
    assert_eq!(std::fs::read(edge.dir.join("site.key")).unwrap(), good_key);
    let (ok, _, err) = edge.cli(&["reload"]);
    assert!(ok, "the restored files reload: {err}");
    assert_eq!(https(), "app");
    let report = load.stop();
    figure(
        "garbage certificate, key, config",
        format!(
            "3 reloads refused, each naming its file ({}); HTTPS kept serving; load: {}",
            refused.join(" | "),
            report.summary()
        ),
    );
    assert_eq!(report.failed(), 0, "{}", report.summary());
}

/// SIGTERM while a request is in flight: the daemon stops accepting, lets
/// the request finish (the grace period), then exits cleanly. Target: the
/// request is answered.
#[test]
fn sigterm_lets_an_in_flight_request_finish() {
    if !require_root("sigterm_lets_an_in_flight_request_finish") {
        return;
    }
    let mut edge = Edge::new("term");
    named_backend(&edge.ns, 9001, "app");
    edge.start(ONE_APP);
    let ns = tests::netns::NetNs::existing(edge.ns.name());
    // `/slow` takes the backend a second.
    let in_flight = std::thread::spawn(move || http_get(&ns, EDGE, "/slow"));
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    let log = edge.daemon.take().unwrap().stop();
    let answer = in_flight.join().unwrap();
    figure(
        "SIGTERM with a request in flight",
        format!(
            "answered {:?} after the signal; the daemon exited {:?} after it",
            answer.as_deref().map(|_| "200"),
            stopped.elapsed()
        ),
    );
    assert_eq!(answer.as_deref(), Ok("app"), "{log}");
}
