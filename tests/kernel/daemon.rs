//! `rampart run` as a daemon: SIGHUP applies a valid new configuration in
//! place and keeps the running one when the new file is invalid; `config
//! check` exits 64 naming file, line and column.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use proxy_user::filter::{FilterMaps, List};
use tests::{
    daemon::{Daemon, rampart_bin},
    netns::Link,
    pins::PinDir,
    privilege::require_root,
    process::Spawned,
};

/// The daemon's configuration: its control socket and state file in `dir`.
fn config(iface: &str, pins: &std::path::Path, dir: &std::path::Path, block: &str) -> String {
    format!(
        "[filter]\ninterfaces = [\"{iface}\"]\npin_dir = \"{}\"\nblock = [{block}]\npps = {{ rate = 1000 }}\n{}",
        pins.display(),
        tests::daemon::control_section(dir)
    )
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_applies_valid_config_and_keeps_running_on_invalid() {
    if !require_root("sighup_applies_valid_config_and_keeps_running_on_invalid") {
        return;
    }
    let link = Link::new("hup");
    let pins = PinDir::new("hup");
    let dir = tests::scratch::Scratch::new("hup");
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        config(&link.edge_if, pins.path(), &dir, "\"192.0.2.1\""),
    )
    .unwrap();
    let daemon = Daemon::start(&link.edge, &path, &link.edge_if);
    let blocked = |maps: &FilterMaps| -> Vec<String> {
        maps.entries(List::Block)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c.to_string())
            .collect()
    };
    let maps = FilterMaps::open(pins.path()).unwrap();
    assert_eq!(blocked(&maps), ["192.0.2.1"]);

    // A valid change: applied in place, same program.
    let prog_before = maps.config().unwrap();
    std::fs::write(
        &path,
        config(
            &link.edge_if,
            pins.path(),
            &dir,
            "\"192.0.2.2\", \"198.51.100.0/24\"",
        ),
    )
    .unwrap();
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    wait_for("the reload", || {
        blocked(&maps) == ["192.0.2.2", "198.51.100.0/24"]
    });
    assert_eq!(
        maps.config().unwrap().pps_interval_ns,
        prog_before.pps_interval_ns
    );

    // An invalid file: the error is logged with its position, nothing changes.
    std::fs::write(&path, "[filter]\nblock = [\"10.1.2.3/8\"]\n").unwrap();
    // SAFETY: kill reads no memory; the pid is our child's, alive.
    unsafe { libc::kill(daemon.pid(), libc::SIGHUP) };
    wait_for("the reload error", || {
        daemon.log_text().contains("reload failed")
    });
    let log = daemon.log_text();
    assert!(log.contains(&format!("{}:2:10", path.display())), "{log}");
    assert_eq!(
        blocked(&maps),
        ["192.0.2.2", "198.51.100.0/24"],
        "the running config stays"
    );
    let show = link.edge.ip(&["link", "show", &link.edge_if]);
    assert!(
        String::from_utf8_lossy(&show.stdout).contains("xdp"),
        "still attached"
    );
    daemon.stop();
    drop(dir);
}

/// A SIGHUP that arrives while the daemon starts (its maps pinned, its
/// filter about to be attached) is a reload once it runs, never the
/// default action's exit. CI caught the window: the handlers were installed
/// after the filter was attached and READY=1 sent.
#[test]
fn a_sighup_while_the_daemon_starts_is_a_reload_not_an_exit() {
    if !require_root("a_sighup_while_the_daemon_starts_is_a_reload_not_an_exit") {
        return;
    }
    let link = Link::new("hup2");
    let pins = PinDir::new("hup2");
    let dir = tests::scratch::Scratch::new("hup2");
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        config(&link.edge_if, pins.path(), &dir, "\"192.0.2.1\""),
    )
    .unwrap();
    let mut cmd = link.edge.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&path);
    let mut proc = Spawned::start("rampart", cmd, &path.with_extension("log"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let maps = loop {
        if let Ok(maps) = FilterMaps::open(pins.path()) {
            break maps;
        }
        assert!(proc.exited().is_none(), "exited: {}", proc.log_text());
        assert!(Instant::now() < deadline, "no maps: {}", proc.log_text());
        std::thread::sleep(Duration::from_millis(1));
    };
    // The file the reload will read, then signals from the moment the maps
    // exist until the filter is attached.
    std::fs::write(
        &path,
        config(&link.edge_if, pins.path(), &dir, "\"192.0.2.2\""),
    )
    .unwrap();
    let attached = || {
        String::from_utf8_lossy(&link.edge.ip(&["link", "show", &link.edge_if]).stdout)
            .contains("xdp")
    };
    let mut sent = 0;
    loop {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(proc.pid(), libc::SIGHUP) };
        sent += 1;
        std::thread::sleep(Duration::from_millis(2));
        if let Some(status) = proc.exited() {
            panic!(
                "SIGHUP {sent} during start-up ended the daemon ({status}):\n{}",
                proc.log_text()
            );
        }
        if attached() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not attached: {}",
            proc.log_text()
        );
    }
    let blocked = || -> Vec<String> {
        maps.entries(List::Block)
            .unwrap()
            .into_iter()
            .map(|(c, _)| c.to_string())
            .collect()
    };
    wait_for("the reload", || blocked() == ["192.0.2.2"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(proc.exited().is_none(), "{}", proc.log_text());
    assert!(proc.terminate().success(), "{}", proc.log_text());
    drop(dir);
}

#[test]
fn config_check_exits_64_with_file_line_column() {
    // No privilege needed: this only parses.
    let dir = tests::scratch::Scratch::new("check");
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[filter]\nmode = \"fast\"\n").unwrap();
    let out = Command::new(rampart_bin())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:8: unknown mode `fast`", bad.display())),
        "{err}"
    );
    let good = dir.join("good.toml");
    std::fs::write(&good, "[filter]\ninterfaces = [\"eth0\"]\n").unwrap();
    let out = Command::new(rampart_bin())
        .args(["-j", "config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], true);
    drop(dir);
}

#[test]
fn config_show_completions_and_man_page_come_from_the_real_binary() {
    // No privilege needed: nothing is attached.
    let dir = tests::scratch::Scratch::new("show");
    tests::certs::self_signed(&dir, "site");
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        "[[listener]]\nbind = \"127.0.0.1:8443\"\ntls = { cert = \"site.crt\", key = \"site.key\" }\n\n\
         [limit.api]\nrate = \"30r/m\"\n\n[[route]]\npath = \"/api/\"\nrespond = 204\nlimit = \"api\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(rampart_bin()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The effective configuration, defaults filled in; the key is named, never shown.
    let shown: serde_json::Value = serde_json::from_str(&run(&[
        "-j",
        "-c",
        path.to_str().unwrap(),
        "config",
        "show",
    ]))
    .unwrap();
    assert_eq!(shown["listeners"][0]["tls"]["min_version"], "1.2");
    assert_eq!(shown["http"]["keepalive_timeout"], 75.0);
    assert_eq!(shown["limits"]["api"]["rate"], "30r/m");
    assert_eq!(shown["routes"][0]["action"], "respond 204");
    let text = run(&["-c", path.to_str().unwrap(), "config", "show"]);
    let key = std::fs::read_to_string(dir.join("site.key")).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(!text.contains("PRIVATE KEY") && !text.contains(key_body));
    // Completions and the man page are generated from the same grammar.
    let bash = run(&["completions", "bash"]);
    for word in ["block", "upstream", "limit", "--ttl"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let man = run(&["man"]);
    assert!(
        man.starts_with(".ie") && man.contains(".TH rampart 8"),
        "{}",
        &man[..200]
    );
    assert!(man.contains("upstream"));
    drop(dir);
}
