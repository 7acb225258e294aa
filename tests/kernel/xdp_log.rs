//! The XDP program's log (issue 14): a malformed frame becomes an aya-log
//! record with target `rampart::xdp`, only at or below the level the
//! loading process set, and at most `rate` records per second (burst `rate`) however
//! many frames arrive; what the budget refuses is counted and reported in
//! the next record. Through the daemon: the records reach its log, and
//! `rampart log level` changes what appears while it runs.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use aya::programs::{TestRun, TestRunOptions};
use aya_log::EbpfLogger;
use proxy_common::{log as klog, stats};
use proxy_user::filter::{Filter, FilterMaps, XdpLog};
use tests::{
    daemon::{Daemon, cli, control_section, filter_section},
    filter::{load, settings},
    netns::Link,
    packet::Frame,
    pins::PinDir,
    privilege::require_root,
    traffic::inject,
};

/// Records as the logger gets them: level, target, message.
#[derive(Default)]
pub(crate) struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((r.level(), r.target().to_string(), r.args().to_string()));
    }

    fn flush(&self) {}
}

impl Capture {
    pub(crate) fn take(&self) -> Vec<(log::Level, String, String)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A reader of `filter`'s ring buffer into a capture of its own.
pub(crate) fn reader(filter: &Filter) -> (EbpfLogger<&'static Capture>, &'static Capture) {
    let capture: &'static Capture = Box::leak(Box::default());
    let id = filter.program().unwrap().info().unwrap().id();
    let logger = EbpfLogger::init_from_id_with_logger(id, capture).expect("aya-log ring buffer");
    (logger, capture)
}

/// An IPv4 header of version 5: the program drops it as malformed.
fn malformed() -> Vec<u8> {
    let mut f = Frame::v4("198.18.0.9", "198.18.0.1").payload(30).build();
    f[14] = 0x55;
    f
}

/// Runs `frame` through the program `n` times in one BPF_PROG_TEST_RUN.
fn run(filter: &Filter, frame: &[u8], n: u32) {
    filter
        .program()
        .unwrap()
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat: n,
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
}

/// The count a record reports as suppressed before it on its CPU,
/// "(N suppressed on this cpu)".
fn suppressed_in(message: &str) -> u64 {
    let head = message
        .rsplit_once(" suppressed on this cpu)")
        .unwrap_or_else(|| panic!("no suppressed count in {message:?}"))
        .0;
    head.rsplit('(').next().unwrap().parse().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn malformed_frames_are_recorded_at_their_level_and_within_the_budget() {
    if !require_root("malformed_frames_are_recorded_at_their_level_and_within_the_budget") {
        return;
    }
    // Suppressed records are counted per CPU and reported by that CPU's next
    // record: the test's runs must all be on one CPU, or a migration between
    // them (common on a loaded 2-CPU machine) reports another CPU's count.
    crate::ratelimit::pin_to_cpu(0);
    let pins = PinDir::new("log14-budget");
    let mut filter = load(&settings(pins.path()));
    let (mut logger, capture) = reader(&filter);
    // The level is the loading process's to set (the program reads it from
    // its own global data); the pinned maps alone cannot change it.
    let mut xdp = filter.log.take().expect("the program's log");
    let e = XdpLog::open(pins.path())
        .unwrap()
        .set(klog::INFO, 5)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("only be changed by the process that loaded"),
        "{e}"
    );
    let frame = malformed();

    // A new program records nothing until the daemon sets a level.
    run(&filter, &frame, 10);
    logger.flush();
    assert!(capture.take().is_empty(), "records with the level off");
    assert_eq!(xdp.pending_suppressed().unwrap(), 0);

    // Info, 5 per second: a flood of 2000 frames gives the burst of 5 (and
    // one more per 200 ms the run took), the rest counted as suppressed.
    xdp.set(klog::INFO, 5).unwrap();
    let start = Instant::now();
    run(&filter, &frame, 2000);
    let took = start.elapsed();
    logger.flush();
    let records = capture.take();
    let bound = 5 + (took.as_millis() / 200) as usize;
    assert!(
        (1..=bound).contains(&records.len()),
        "{} records for 2000 frames in {took:?}, at most {bound} allowed",
        records.len()
    );
    let (level, target, message) = &records[0];
    assert_eq!(*level, log::Level::Info);
    assert_eq!(target, "rampart::xdp");
    let mut sample = frame.clone();
    sample.resize(64, 0);
    assert!(
        message.starts_with(&format!(
            "malformed frame dropped: {} bytes on ifindex ",
            frame.len()
        )) && message.contains(&format!("first bytes {}", hex(&sample))),
        "{message}"
    );
    let reported: u64 = records.iter().map(|r| suppressed_in(&r.2)).sum();
    let pending = xdp.pending_suppressed().unwrap();
    assert_eq!(
        records.len() as u64 + reported + pending,
        2000,
        "every frame is either a record or counted as suppressed"
    );
    assert!(pending >= 2000 - bound as u64, "pending {pending}");

    // The next record, once the budget refills, reports them.
    std::thread::sleep(Duration::from_millis(250));
    run(&filter, &frame, 1);
    logger.flush();
    let next = capture.take();
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(suppressed_in(&next[0].2), pending, "{}", next[0].2);
    assert_eq!(xdp.pending_suppressed().unwrap(), 0);

    // Warn: info events are skipped before the budget, so not even counted.
    xdp.set(klog::WARN, 5).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    run(&filter, &frame, 100);
    logger.flush();
    assert!(capture.take().is_empty(), "info records at warn");
    assert_eq!(xdp.pending_suppressed().unwrap(), 0, "counted at warn");

    // A rate of 0 records nothing, whatever the level.
    xdp.set(klog::TRACE, 0).unwrap();
    assert_eq!(xdp.settings().unwrap().level, klog::OFF);
    run(&filter, &frame, 100);
    logger.flush();
    assert!(capture.take().is_empty(), "records at rate 0");

    // And every one of those frames was dropped as malformed.
    assert_eq!(
        filter.maps.verdicts().unwrap()[stats::MALFORMED as usize].packets,
        10 + 2000 + 1 + 100 + 100
    );
}

/// Lines of the daemon's log that are XDP records of malformed frames.
fn xdp_lines(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("rampart::xdp") && l.contains("malformed frame dropped"))
        .count()
}

fn wait_for(what: &str, daemon: &Daemon, mut done: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = daemon.log_text();
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_logs_xdp_records_at_the_level_set_at_run_time() {
    if !require_root("the_daemon_logs_xdp_records_at_the_level_set_at_run_time") {
        return;
    }
    let link = Link::new("log14");
    let pins = PinDir::new("log14-daemon");
    let dir = tests::scratch::Scratch::new("log14");
    let dir: &std::path::Path = &dir;
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        format!(
            "{}[log]\nlevel = \"info\"\nxdp_rate = 5\n{}",
            filter_section(&link.edge_if, pins.path(), &[]),
            control_section(dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&link.edge, &path, &link.edge_if);
    let socket = dir.join("control.sock");
    let ctl = |args: &[&str]| -> String {
        let mut full = vec!["--socket", socket.to_str().unwrap()];
        full.extend_from_slice(args);
        let (ok, out, err) = cli(&link.edge, &full);
        assert!(ok, "rampart {}: {err}", args.join(" "));
        out
    };
    let maps = FilterMaps::open(pins.path()).unwrap();
    let xdp = XdpLog::open(pins.path()).unwrap();
    let dropped = || maps.verdicts().unwrap()[stats::MALFORMED as usize].packets;
    let send = |n: usize| {
        let before = dropped();
        inject(&link.client, &link.client_if, malformed(), n);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped() < before + n as u64 {
            assert!(Instant::now() < deadline, "the frames did not reach XDP");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // The configuration's level: info, so a malformed frame is logged.
    let shown: serde_json::Value = serde_json::from_str(&ctl(&["-j", "log", "level"])).unwrap();
    assert_eq!(shown["level"], "info", "{shown}");
    assert_eq!(shown["from"], "config", "{shown}");
    assert_eq!(shown["xdp"]["level"], "info", "{shown}");
    assert_eq!(shown["xdp"]["rate"], 5, "{shown}");
    send(1);
    let log = wait_for("the first record", &daemon, |l| xdp_lines(l) == 1);
    let line = log.lines().find(|l| l.contains("rampart::xdp")).unwrap();
    assert!(line.contains("INFO"), "{line}");

    // A flood is held to the budget: 5 per second, burst 5.
    std::thread::sleep(Duration::from_millis(1100));
    let start = Instant::now();
    send(500);
    std::thread::sleep(Duration::from_millis(300));
    let took = start.elapsed();
    let flood = xdp_lines(&daemon.log_text()) - 1;
    let bound = 5 + (took.as_millis() / 200) as usize;
    assert!(
        (1..=bound).contains(&flood),
        "{flood} records for 500 frames in {took:?} (at most {bound})"
    );

    // warn: malformed frames (info) are neither logged nor reach the ring buffer.
    let out = ctl(&["log", "level", "warn"]);
    assert!(out.contains("level  warn (set from the CLI"), "{out}");
    assert_eq!(xdp.settings().unwrap().level, klog::WARN);
    assert!(
        daemon
            .log_text()
            .contains("INFO  proxy_user::daemon::log_level] log level warn (from the CLI)"),
        "a quieter level is announced before it applies"
    );
    std::thread::sleep(Duration::from_millis(1100));
    let before = xdp_lines(&daemon.log_text());
    let pending = xdp.pending_suppressed().unwrap();
    send(50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(xdp_lines(&daemon.log_text()), before, "records at warn");
    assert_eq!(
        xdp.pending_suppressed().unwrap(),
        pending,
        "the program went past the level check at warn"
    );

    // off: nothing from the kernel or the daemon itself.
    ctl(&["log", "level", "off"]);
    assert_eq!(xdp.settings().unwrap().level, klog::OFF);
    let quiet = daemon.log_text().len();

    send(50);
    ctl(&["block", "add", "192.0.2.99"]);
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.log_text();
    assert_eq!(log.len(), quiet, "logged at off: {}", &log[quiet..]);

    // Back to the configuration: info again, records again.
    let shown: serde_json::Value =
        serde_json::from_str(&ctl(&["-j", "log", "level", "reset"])).unwrap();
    assert_eq!(shown["from"], "config", "{shown}");
    assert_eq!(xdp.settings().unwrap().level, klog::INFO);
    let before = xdp_lines(&daemon.log_text());
    send(1);
    let log = wait_for("a record after reset", &daemon, |l| {
        xdp_lines(l) == before + 1
    });
    assert!(
        log[quiet..].contains("log level back to info"),
        "{}",
        &log[quiet..]
    );
}
