//! One IPv6 source is a prefix (`[filter] ipv6_prefix`, default /64) for
//! every tier: real connections from several addresses of one /64, against
//! the daemon without XDP (the gate), share the L7 request limit, and an
//! escalation ban or a CLI ban of one of them refuses them all, while the
//! next /64 is another source. (The XDP tier's bans and budgets are checked
//! by the packet fixtures.)

use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    daemon::{cli, control_section, rampart_bin},
    netns::Link,
    privilege::require_root,
    process::Spawned,
};

const EDGE: &str = "fd72:9::1";
/// Two addresses of one /64...
const A1: &str = "fd72:9:0:1::a";
const A2: &str = "fd72:9:0:1::b";
/// ...one of the next /64...
const B: &str = "fd72:9:0:2::a";
/// ...and a /64 the CLI bans by one of its addresses.
const C1: &str = "fd72:9:0:3::a";
const C2: &str = "fd72:9:0:3::b";

fn curl(link: &Link, src: &str, path: &str) -> String {
    tests::backend::curl_status(&link.client, src, &format!("http://[{EDGE}]:8080{path}"))
}

#[test]
fn ipv6_sources_are_limited_and_banned_per_64() {
    if !require_root("ipv6_sources_are_limited_and_banned_per_64") {
        return;
    }
    let link = Link::new("src6");
    link.edge_addr(&format!("{EDGE}/48"));
    for a in [A1, A2, B, C1, C2] {
        link.client_addr(&format!("{a}/48"));
    }
    let dir = std::env::temp_dir().join(format!("rampart-src6-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[filter]\ninterfaces = []\n\n{}\n\
             [limit.api]\nrate = \"1r/m\"\nburst = 2\nnodelay = true\n\n\
             [escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n\
             [[listener]]\nbind = \"[{EDGE}]:8080\"\n\n\
             [[route]]\npath = \"/api/\"\nrespond = 200\nlimit = \"api\"\n\n\
             [[route]]\npath_regex = '\\.env$'\nrespond = 404\nescalate = \"scanners\"\n\n\
             [[route]]\nrespond = 200\n",
            control_section(&dir)
        ),
    )
    .unwrap();
    let mut cmd = link.edge.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&config);
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    daemon.wait_until(Duration::from_secs(15), || curl(&link, B, "/") == "200");
    let ctl = |args: &[&str]| -> String {
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&link.edge, &all);
        assert!(ok, "rampart {args:?}: {err}");
        out
    };

    // The L7 limit: a burst of 2 per source (3 requests), and A1 and A2 are one source.
    let first: Vec<String> = (0..2).map(|_| curl(&link, A1, "/api/x")).collect();
    let second: Vec<String> = (0..2).map(|_| curl(&link, A2, "/api/x")).collect();
    println!("limit api from one /64: {first:?} then {second:?}");
    assert_eq!(first, ["200", "200"]);
    assert_eq!(
        second,
        ["200", "429"],
        "the second address of the /64 shares its budget"
    );
    assert_eq!(curl(&link, B, "/api/x"), "200", "the next /64 has its own");

    // Escalation: 404s spread over two addresses of the /64 add up, and
    // the ban covers the whole /64.
    for src in [A1, A2, A1, A2] {
        assert_eq!(curl(&link, src, "/.env"), "404");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while curl(&link, A2, "/") != "000" {
        assert!(Instant::now() < deadline, "no ban:\n{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(curl(&link, A1, "/"), "000", "the whole /64 is banned");
    assert_eq!(curl(&link, B, "/"), "200", "the next /64 is not");
    let ip: Value = serde_json::from_str(&ctl(&["-j", "ip", "show", A2])).unwrap();
    println!("ip show {A2}: acted on {}", ip["acted_on"]);
    assert_eq!(ip["acted_on"], "fd72:9:0:1::/64");
    assert_eq!(ip["verdict"], "banned");
    assert_eq!(ip["ban"]["source"], "fd72:9:0:1::/64");
    assert_eq!(ip["ban"]["origin"], "auto-ban");

    // A CLI ban of one address bans its /64, and is listed as the /64.
    ctl(&["block", "add", C1, "--reason", "test"]);
    assert_eq!(curl(&link, C2, "/"), "000", "banned by its neighbour's ban");
    let list: Value = serde_json::from_str(&ctl(&["-j", "block", "list"])).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|e| e["cidr"] == "fd72:9:0:3::/64" && e["kind"] == "ban"),
        "{list:#}"
    );
    // Lifted by another address of the same /64.
    ctl(&["block", "del", C2]);
    assert_eq!(curl(&link, C1, "/"), "200");
    daemon.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
