//! The real `rampart` binary run as a daemon inside a namespace, killed on drop.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::netns::NetNs;

/// The `rampart` binary under test: `$RAMPART_BIN`, else the workspace's debug build.
pub fn rampart_bin() -> PathBuf {
    let path = std::env::var_os("RAMPART_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/rampart"));
    assert!(
        path.exists(),
        "{} not found: build it first (`cargo build -p proxy-user`) or set RAMPART_BIN",
        path.display()
    );
    path
}

pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    /// Starts `rampart run -c CONFIG` in `ns` and waits until XDP is attached to `iface`.
    pub fn start(ns: &NetNs, config: &Path, iface: &str) -> Daemon {
        let log = config.with_extension("log");
        let out = std::fs::File::create(&log).unwrap();
        let child = ns
            .command(rampart_bin().to_str().unwrap())
            .args(["run", "-c"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("spawn rampart");
        let mut d = Daemon {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let show = ns.ip(&["link", "show", iface]);
            if String::from_utf8_lossy(&show.stdout).contains("xdp") {
                return d;
            }
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rampart exited with {status} before attaching:\n{}",
                    d.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "rampart did not attach within 15 s:\n{}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends SIGTERM and waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        let log = self.log_text();
        assert!(status.success(), "rampart exited with {status}:\n{log}");
        log
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
