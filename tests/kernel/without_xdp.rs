//! The same cases as `control.rs`, without XDP: a `[filter]` that names no
//! interfaces makes the daemon enforce the allowlist, blocklist, bans and
//! per-source connection rate in userspace at accept time. Every case is
//! checked by what real connections get.

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    daemon::{cli, control_section, rampart_bin},
    netns::Link,
    privilege::require_root,
    process::Spawned,
};

const EDGE: &str = "198.18.2.1";
const CLIENT: &str = "198.18.2.10";
const BURSTY: &str = "198.18.2.11";
const SCANNER: &str = "198.18.2.12";
const ALLOWED: &str = "198.18.2.20";
const BLOCKED: &str = "198.18.2.66";

struct Edge {
    link: Link,
    dir: tests::scratch::Scratch,
    config: std::path::PathBuf,
}

impl Edge {
    fn start(&self) -> Spawned {
        let mut cmd = self.link.edge.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"]).arg(&self.config);
        let mut d = Spawned::start("rampart", cmd, &self.dir.join("rampart.log"));
        d.wait_until(Duration::from_secs(15), || self.curl(CLIENT, "/") == "200");
        d
    }

    /// The status `curl` gets from `src`, "000" when the connection is refused.
    fn curl(&self, src: &str, path: &str) -> String {
        tests::backend::curl_status(&self.link.client, src, &format!("http://{EDGE}:8080{path}"))
    }

    fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let mut all = vec!["-c", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        cli(&self.link.edge, &all)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.ctl(args);
        assert!(ok, "rampart {args:?}: {err}");
        out
    }
}

#[test]
fn without_xdp_the_same_lists_bans_and_rates_are_enforced_at_accept_time() {
    if !require_root("without_xdp_the_same_lists_bans_and_rates_are_enforced_at_accept_time") {
        return;
    }
    let link = Link::new("gat");
    link.edge_addr(&format!("{EDGE}/24"));
    for a in [CLIENT, BURSTY, SCANNER, ALLOWED, BLOCKED] {
        link.client_addr(&format!("{a}/24"));
    }
    let dir = tests::scratch::Scratch::new("gate");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[filter]\ninterfaces = []\nallow = [\"{ALLOWED}\"]\nblock = [\"{BLOCKED}\", \"198.18.2.16/28\"]\n\
             syn = {{ rate = 2, burst = 10 }}\n\n{}\n\
             [escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n\
             [[route]]\npath_regex = '\\.env$'\nrespond = 404\nescalate = \"scanners\"\n\n\
             [[route]]\nrespond = 200\n",
            control_section(&dir)
        ),
    )
    .unwrap();
    let edge = Edge { link, dir, config };
    let daemon = edge.start();
    assert!(
        daemon
            .log_text()
            .contains("enforced in userspace at accept time"),
        "{}",
        daemon.log_text()
    );

    // Configuration lists: the blocklist refuses, the allowlist wins.
    assert_eq!(edge.curl(BLOCKED, "/"), "000");
    assert_eq!(
        edge.curl(ALLOWED, "/"),
        "200",
        "allowlisted inside a blocked /28"
    );

    // A CLI ban applies at once, shows its reason, and expires on time.
    edge.ok(&["block", "add", CLIENT, "--ttl", "2s", "--reason", "test"]);
    assert_eq!(edge.curl(CLIENT, "/"), "000");
    let list: Value = serde_json::from_str(&edge.ok(&["-j", "block", "list"])).unwrap();
    let ban = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cidr"] == CLIENT)
        .unwrap();
    assert_eq!(ban["kind"], "ban");
    assert_eq!(ban["reason"], "test");
    let deadline = Instant::now() + Duration::from_secs(6);
    while edge.curl(CLIENT, "/") != "200" {
        assert!(Instant::now() < deadline, "the 2 s ban did not expire");
        std::thread::sleep(Duration::from_millis(250));
    }

    // The per-source connection rate: a burst of 10, then 2 a second.
    let statuses: Vec<String> = (0..20).map(|_| edge.curl(BURSTY, "/")).collect();
    let served = statuses.iter().filter(|s| *s == "200").count();
    assert!(
        (10..=14).contains(&served),
        "{served} of 20 served: {statuses:?}"
    );
    let limits: Value = serde_json::from_str(&edge.ok(&["-j", "limit", "show"])).unwrap();
    assert_eq!(limits[0]["name"], "syn");
    assert_eq!(limits[0]["tier"], "userspace");
    let (ok, _, err) = edge.ctl(&["limit", "set", "pps", "--rate", "10"]);
    assert!(!ok && err.contains("no packet rate limit"), "{err}");
    edge.ok(&["limit", "set", "syn", "--off"]);
    assert!((0..10).all(|_| edge.curl(BURSTY, "/") == "200"));

    // Escalation bans in userspace too, with its rule as the reason.
    for _ in 0..4 {
        assert_eq!(edge.curl(SCANNER, "/.env"), "404");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while edge.curl(SCANNER, "/") != "000" {
        assert!(Instant::now() < deadline, "no ban:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ip: Value = serde_json::from_str(&edge.ok(&["-j", "ip", "show", SCANNER])).unwrap();
    assert_eq!(ip["enforced_in"], "userspace");
    assert_eq!(ip["verdict"], "banned");
    assert_eq!(ip["ban"]["origin"], "auto-ban");
    assert!(
        ip["ban"]["reason"]
            .as_str()
            .unwrap()
            .contains("escalate.scanners")
    );
    for _ in 0..5 {
        edge.curl(ALLOWED, "/x.env");
    }
    assert_eq!(
        edge.curl(ALLOWED, "/"),
        "200",
        "the allowlist is never banned"
    );

    // A restart restores the runtime state: the ban and the syn change.
    let mut daemon = daemon;
    daemon.terminate();
    let daemon = edge.start();
    assert_eq!(
        edge.curl(SCANNER, "/"),
        "000",
        "the ban survived the restart"
    );
    assert!(
        (0..12).all(|_| edge.curl(BURSTY, "/") == "200"),
        "syn stays off"
    );
    drop(daemon);
}
