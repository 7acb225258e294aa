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
