//! What every reliability case needs: a namespace of its own with rampart
//! serving a configuration on 127.0.0.1:8080, its control socket and admin
//! listener, and a way to print a figure.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    backend::http_get,
    daemon::{Daemon, cli, control_section},
    netns::NetNs,
};

/// Where cases send their traffic (inside the case's namespace).
pub const EDGE: &str = "127.0.0.1:8080";

/// The configuration most cases serve: every request to the backend on
/// 127.0.0.1:9001.
pub const ONE_APP: &str =
    "[upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n[[route]]\nupstream = \"app\"\n";

/// A namespace, a directory and rampart serving in them; all removed on drop.
pub struct Edge {
    pub ns: NetNs,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub daemon: Option<Daemon>,
    /// More settings of the listener on [`EDGE`] (TOML lines).
    pub listener: String,
}

impl Edge {
    /// A namespace and a directory for case `tag`; rampart not started yet.
    pub fn new(tag: &str) -> Edge {
        let ns = NetNs::new(tag);
        let dir = std::env::temp_dir().join(format!("rampart-rel-{}-{}", ns.name(), tag));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("rampart.toml");
        Edge {
            ns,
            dir,
            config,
            daemon: None,
            listener: String::new(),
        }
    }

    /// Writes `config` (a listener on [`EDGE`] and the control section are
    /// added) and starts rampart on it.
    pub fn start(&mut self, config: &str) {
        self.write_config(config);
        self.daemon = Some(Daemon::serving(&self.ns, &self.config, EDGE));
    }

    /// Writes the configuration file (as [`Edge::start`] does).
    pub fn write_config(&self, config: &str) {
        std::fs::write(
            &self.config,
            format!(
                "[[listener]]\nbind = \"{EDGE}\"\n{}\n\n{}\n{config}",
                self.listener,
                control_section(&self.dir)
            ),
        )
        .unwrap();
    }

    pub fn pid(&self) -> i32 {
        self.daemon.as_ref().unwrap().pid()
    }

    pub fn log_text(&self) -> String {
        self.daemon.as_ref().unwrap().log_text()
    }

    /// `rampart ARGS` against this daemon: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["-c", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(&self.ns, &all)
    }

    /// `rampart -j ARGS`, which must succeed, as JSON.
    pub fn ctl(&self, args: &[&str]) -> Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        let (ok, out, err) = self.cli(&all);
        assert!(ok, "rampart {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    /// The server `addr` as `rampart upstream list` shows it.
    pub fn server(&self, addr: &str) -> Value {
        self.ctl(&["upstream", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["addr"] == addr)
            .cloned()
            .unwrap_or_else(|| panic!("{addr} not in upstream list"))
    }

    /// The value of the unlabelled metric `name` on the admin listener.
    /// Waits until the metric `name` reads `value`, for at most `within`;
    /// panics with `what` and the daemon's log otherwise.
    pub fn wait_for_metric(&self, name: &str, value: f64, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        while self.metric(name) != value {
            assert!(Instant::now() < deadline, "{what}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = http_get(&self.ns, "127.0.0.1:9901", "/metrics").unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        drop(self.daemon.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Records a case's figure: printed (seen with `--nocapture`) and appended
/// to `target/tmp/reliability/figures.txt`, which `cargo xtask test` and
/// `cargo xtask soak` print at the end (RELIABILITY.md records them).
pub fn figure(case: &str, text: impl std::fmt::Display) {
    use std::io::Write;
    let line = format!("{case}: {text}");
    println!("figure: {line}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/reliability");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("figures.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
}
