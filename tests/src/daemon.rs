//! The real `rampart` binary run as a daemon inside a namespace, killed on drop.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{netns::NetNs, process::Spawned};

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

/// Runs the `rampart` CLI in `ns` with `args`; returns (success, stdout, stderr).
pub fn cli(ns: &NetNs, args: &[&str]) -> (bool, String, String) {
    let out = ns
        .command(rampart_bin().to_str().unwrap())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A `[filter]` section attaching natively to `iface`, pinning in `pins`,
/// blocking `block` (more `[filter]` keys may follow it).
pub fn filter_section(iface: &str, pins: &Path, block: &[&str]) -> String {
    let block: Vec<String> = block.iter().map(|b| format!("\"{b}\"")).collect();
    format!(
        "[filter]\ninterfaces = [\"{iface}\"]\nmode = \"native\"\npin_dir = \"{}\"\nblock = [{}]\n",
        pins.display(),
        block.join(", ")
    )
}

/// `[control]` settings for a test: socket and state file in `dir`.
pub fn control_section(dir: &Path) -> String {
    format!(
        "[control]\nsocket = \"{}/control.sock\"\nstate_file = \"{}/state.json\"\n",
        dir.display(),
        dir.display()
    )
}

/// `rampart run` attaching XDP in a namespace; killed on drop.
pub struct Daemon {
    proc: Spawned,
}

impl Daemon {
    /// Starts `rampart run -c CONFIG` in `ns` and waits until XDP is attached to `iface`.
    pub fn start(ns: &NetNs, config: &Path, iface: &str) -> Daemon {
        let mut cmd = ns.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"]).arg(config);
        let mut proc = Spawned::start("rampart", cmd, &config.with_extension("log"));
        proc.wait_until(Duration::from_secs(15), || {
            String::from_utf8_lossy(&ns.ip(&["link", "show", iface]).stdout).contains("xdp")
        });
        Daemon { proc }
    }

    /// Starts `rampart run -c CONFIG` in `ns` without a filter and waits
    /// until `probe` (`ADDR:PORT`, inside `ns`) accepts connections.
    pub fn serving(ns: &NetNs, config: &Path, probe: &str) -> Daemon {
        let mut cmd = ns.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"]).arg(config);
        let mut proc = Spawned::start("rampart", cmd, &config.with_extension("log"));
        let probe: std::net::SocketAddr = probe.parse().unwrap();
        proc.wait_until(Duration::from_secs(15), || {
            ns.run(move || {
                std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok()
            })
        });
        Daemon { proc }
    }

    pub fn log_text(&self) -> String {
        self.proc.log_text()
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(mut self) -> String {
        self.proc.kill();
        self.log_text()
    }

    /// Sends SIGTERM and waits for a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        let status = self.proc.terminate();
        let log = self.log_text();
        assert!(status.success(), "rampart exited with {status}:\n{log}");
        log
    }
}
