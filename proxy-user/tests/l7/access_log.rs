//! Access lines: where they go (`access_log = "off"` means none), and the
//! `combined` format as log parsers read it.

use std::sync::{Mutex, Once};

use hyper::StatusCode;

use crate::support::{backend, client, get, proxy, test_dir};

/// Every `access` line the daemon's log receives in this test process (the
/// daemon logs through the `log` facade; the binary does the logger setup).
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target() == "access"
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            LINES.lock().unwrap().push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in the l7 tests");
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn daemon_log_lines_with(marker: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(marker))
        .cloned()
        .collect()
}

fn config(backend: std::net::SocketAddr, http: &str) -> String {
    format!(
        r#"
[http]
{http}

[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{backend}"]

[[route]]
upstream = "app"
"#
    )
}

/// nginx `access_log off`: no line in a file, none on the daemon's log.
/// Without the key, lines go to the daemon's log (the control: the capture
/// sees them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_off_writes_no_line_anywhere() {
    capture();
    let b = backend(0).await;
    let c = client();
    for (http, marker, want) in [
        ("", "/default-goes-to-daemon-log", 1),
        ("access_log = \"off\"", "/off-goes-nowhere", 0),
    ] {
        let dir = test_dir("access-off");
        let p = proxy(&dir, &config(b.addr, http)).await;
        let url = format!("http://{}{marker}", p.addr());
        assert_eq!(get(&c, &url).await.0, StatusCode::OK);
        assert_eq!(
            daemon_log_lines_with(marker).len(),
            want,
            "{http:?}: {:?}",
            daemon_log_lines_with(marker)
        );
        assert!(
            !dir.join("off").exists(),
            "\"off\" is not a file name: {}",
            dir.display()
        );
    }
}

/// The `combined` file as goaccess itself reads it (`--log-format=COMBINED`):
/// every line valid. Skipped when goaccess is not installed (Debian package
/// `goaccess`, which `cargo xtask test` installs); under `CI=true` a missing
/// goaccess fails instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_file_reads_in_goaccess() {
    if std::process::Command::new("goaccess")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "goaccess is not installed; CI=true forbids skipping (cargo xtask bootstrap installs it)"
        );
        eprintln!("SKIP combined_file_reads_in_goaccess: goaccess not installed");
        return;
    }
    let b = backend(0).await;
    let dir = test_dir("access-goaccess");
    let p = proxy(&dir, &config(b.addr, "access_log = \"access.log\"")).await;
    let c = client();
    for path in ["/", "/api/items?page=2", "/missing"] {
        let url = format!("http://{}{path}", p.addr());
        assert_eq!(get(&c, &url).await.0, StatusCode::OK);
    }
    // The log is flushed by a background task every second.
    let log = dir.join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "3 lines within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let out = std::process::Command::new("goaccess")
        .arg(&log)
        .args(["--log-format=COMBINED", "--no-global-config", "-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "goaccess: {e}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let g = &report["general"];
    let text = std::fs::read_to_string(&log).unwrap();
    println!(
        "goaccess COMBINED: {} of {} lines valid, {} failed",
        g["valid_requests"], g["total_requests"], g["failed_requests"]
    );
    assert_eq!(
        (
            &g["total_requests"],
            &g["valid_requests"],
            &g["failed_requests"]
        ),
        (&3.into(), &3.into(), &0.into()),
        "{text}"
    );
}

/// A custom `access_log_format` (nginx `log_format`) in a file, read back by
/// goaccess with the matching custom format: every line valid, and the
/// virtual host, status and request time come through as fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_format_file_reads_in_goaccess() {
    if std::process::Command::new("goaccess")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "goaccess is not installed; CI=true forbids skipping (cargo xtask bootstrap installs it)"
        );
        eprintln!("SKIP custom_format_file_reads_in_goaccess: goaccess not installed");
        return;
    }
    let b = backend(0).await;
    let dir = test_dir("access-custom");
    let http = r#"access_log = "access.log"
access_log_format = '$host $remote_addr [$time_local] "$request" $status $body_bytes_sent $request_time "$http_user_agent" id=$request_id'"#;
    let p = proxy(&dir, &config(b.addr, http)).await;
    let c = client();
    for path in ["/", "/api/items?page=2", "/x"] {
        let url = format!("http://{}{path}", p.addr());
        assert_eq!(get(&c, &url).await.0, StatusCode::OK);
    }
    let log = dir.join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&log).map_or(0, |t| t.lines().count()) < 3 {
        assert!(std::time::Instant::now() < deadline, "3 lines within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let line = regex::Regex::new(
        r#"^127\.0\.0\.1 127\.0\.0\.1 \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /api/items\?page=2 HTTP/1\.1" 200 \S+ \d+\.\d{3} "-" id=\S+$"#,
    )
    .unwrap();
    assert!(text.lines().any(|l| line.is_match(l)), "{text}");
    let out = std::process::Command::new("goaccess")
        .arg(&log)
        .args([
            "--log-format=%v %h [%d:%t %^] \"%r\" %s %b %T \"%u\" %^",
            "--date-format=%d/%b/%Y",
            "--time-format=%H:%M:%S",
            "--no-global-config",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "goaccess: {e}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let g = &report["general"];
    assert_eq!(
        (
            &g["total_requests"],
            &g["valid_requests"],
            &g["failed_requests"]
        ),
        (&3.into(), &3.into(), &0.into()),
        "{text}"
    );
    let vhosts = report["vhosts"]["data"].to_string();
    assert!(vhosts.contains("127.0.0.1"), "{vhosts}");
}
