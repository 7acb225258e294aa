//! Uvicorn on Unix sockets (`uvicorn --uds`) behind the real daemon:
//! `servers = ["unix:/…/a.sock", …]` balances between the workers, the
//! `rampart upstream` controls name the sockets, and the active health
//! check takes a stopped worker out.

use std::{path::Path, time::Duration};

use serde_json::Value;
use tests::{
    backend::http_get,
    daemon::{cli, control_section, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

/// A Uvicorn worker running the FastAPI example on the Unix socket `sock`.
fn uvicorn_uds(ns: &NetNs, sock: &Path, dir: &Path) -> Spawned {
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fastapi");
    let mut cmd = ns.command("python3");
    cmd.args(["-m", "uvicorn", "app:app", "--app-dir"])
        .arg(&app)
        .arg("--uds")
        .arg(sock)
        .args(["--log-level", "warning"]);
    let name = sock.file_name().unwrap().to_string_lossy().into_owned();
    let mut w = Spawned::start(
        &format!("uvicorn {name}"),
        cmd,
        &dir.join(format!("uvicorn-{name}.log")),
    );
    let sock = sock.to_path_buf();
    w.wait_until(Duration::from_secs(30), || {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "2", "--unix-socket"])
            .arg(&sock)
            .arg("http://localhost/health")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"{\"status\""))
    });
    w
}

/// The Uvicorn worker's pid in an `/api/` answer.
fn pid(ns: &NetNs) -> u64 {
    let body = http_get(ns, "127.0.0.1:8080", "/api/who").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["forwarded_for"], "127.0.0.1", "{v}");
    v["pid"].as_u64().unwrap()
}

#[test]
fn uvicorn_workers_on_unix_sockets() {
    if !require_root("uvicorn_workers_on_unix_sockets") {
        return;
    }
    let ns = NetNs::new("h16d-uds");
    let dir = tests::scratch::Scratch::new("h16d-uds");
    let (a, b) = (dir.join("a.sock"), dir.join("b.sock"));
    let wa = uvicorn_uds(&ns, &a, &dir);
    let wb = uvicorn_uds(&ns, &b, &dir);
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:8080\"\n\n\
             [upstream.app]\nservers = [\"unix:{}\", \"unix:{}\"]\n\
             [upstream.app.health_check]\npath = \"/health\"\ninterval = \"200ms\"\nfails = 1\npasses = 1\n\n\
             [[route]]\nupstream = \"app\"\n\n{}",
            a.display(),
            b.display(),
            control_section(&dir)
        ),
    )
    .unwrap();
    let mut cmd = ns.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&config);
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    daemon.wait_until(Duration::from_secs(15), || {
        http_get(&ns, "127.0.0.1:8080", "/health").is_ok()
    });
    let ctl = |args: &[&str]| -> Value {
        let mut all = vec!["-j", "-c", config.to_str().unwrap(), "upstream"];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&ns, &all);
        assert!(ok, "rampart upstream {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    };
    let (ua, ub) = (
        format!("unix:{}", a.display()),
        format!("unix:{}", b.display()),
    );
    let state = |addr: &str| -> String {
        let list = ctl(&["list"]);
        let s = list.as_array().unwrap().iter().find(|s| s["addr"] == addr);
        s.unwrap_or_else(|| panic!("{addr} not in {list}"))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Both workers serve (least_conn takes turns between idle servers).
    let pids: std::collections::BTreeSet<u64> = (0..20).map(|_| pid(&ns)).collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(state(&ua), "up");
    assert_eq!(state(&ub), "up");

    // Draining a socket by its name (no group: the path's slashes are its own).
    assert_eq!(ctl(&["drain", &ua])["drained"], true);
    let only: std::collections::BTreeSet<u64> = (0..10).map(|_| pid(&ns)).collect();
    assert_eq!(only.len(), 1, "{only:?}");
    assert_eq!(state(&ua), "drained");
    ctl(&["undrain", &format!("app/{ua}")]);
    let only_b = *only.iter().next().unwrap();

    // Worker b stops: the health check takes its socket out; a serves all.
    drop(wb);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while state(&ub) != "down" {
        assert!(std::time::Instant::now() < deadline, "b never marked down");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..10 {
        assert_ne!(pid(&ns), only_b, "the stopped worker got a request");
    }
    drop(wa);
    daemon.terminate();
}
