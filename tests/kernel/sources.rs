//! One IPv6 source is a prefix (`[filter] ipv6_prefix`, default /64) for
//! every tier: real connections from several addresses of one /64, against
//! the daemon without XDP (the gate), share the L7 request limit, and an
//! escalation ban or a CLI ban of one of them refuses them all, while the
//! next /64 is another source. (The XDP tier's bans and budgets are checked
//! by the packet fixtures.) A reload or restart that changes the prefix
//! keys the kernel's bans again.

use std::time::{Duration, Instant};

use proxy_common::{
    list::{ORIGIN_CLI, ORIGIN_ESCALATION},
    stats::{BANNED, BLOCKLISTED, PASS},
};
use proxy_user::{
    cidr::Cidr, control_socket::protocol::Request, escalate::AutoBan, filter::List,
    state_file::ListName,
};
use serde_json::Value;
use tests::{
    daemon::{cli, control_section, rampart_bin},
    filter::verdict_of,
    in_process,
    netns::Link,
    packet::Frame,
    pins::PinDir,
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
    let dir = tests::scratch::Scratch::new("src6");
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
    drop(dir);
}

/// Issue 13 review: after a reload that changed `ipv6_prefix`, the
/// kernel's bans stayed keyed by the old prefix while the program looked
/// sources up by the new one: the banned /64s' neighbours in their new /48
/// passed, and after a change to /128 everything but each ban's first
/// address passed. Now a shorter prefix widens (and merges) the bans, a
/// longer one keeps each as the blocklist range it covered; a restart
/// under another prefix keys the pinned bans again too.
#[test]
fn a_changed_ipv6_prefix_keys_the_kernels_bans_again() {
    if !require_root("a_changed_ipv6_prefix_keys_the_kernels_bans_again") {
        return;
    }
    let pins = PinDir::new("rekey");
    let dir = tests::scratch::Scratch::new("rekey");
    let config = dir.join("rampart.toml");
    let write = |prefix: u8| {
        std::fs::write(
            &config,
            format!(
                "[filter]\ninterfaces = []\npin_dir = \"{}\"\nipv6_prefix = {prefix}\n\n{}",
                pins.path().display(),
                control_section(&dir)
            ),
        )
        .unwrap();
    };
    write(64);
    let d = in_process::daemon(&config);
    let block = |d: &in_process::InProcess, addr: &str, ttl_secs: Option<u64>| {
        let reply = d.command(Request::ListAdd {
            list: ListName::Block,
            cidr: addr.parse().unwrap(),
            ttl_secs,
            reason: Some("test".into()),
            local: false,
        });
        assert!(reply.ok, "{reply:?}");
    };
    let report = |addr: &str, secs: u64| AutoBan {
        addr: addr.parse().unwrap(),
        rule: "scanners".into(),
        count: 3,
        statuses: vec![404],
        route: "probes".into(),
        within: Duration::from_secs(60),
        ttl: Duration::from_secs(secs),
    };
    let verdict = |d: &in_process::InProcess, src: &str| {
        let frame = Frame::v6(src, "fd72:9::1").build();
        d.with_filter(move |f| verdict_of(f, &frame).1)
    };
    let v6_bans = |d: &in_process::InProcess| {
        let mut b: Vec<(String, u32)> = d.with_filter(|f| {
            f.maps
                .bans()
                .unwrap()
                .iter()
                .filter(|b| b.addr.is_ipv6())
                .map(|b| (b.addr.to_string(), b.origin))
                .collect()
        });
        b.sort();
        b
    };
    block(&d, "fd72:a:1:1::1", None);
    block(&d, "fd72:a:1:2::1", Some(3600));
    d.auto_bans(vec![
        report("fd72:a:1:3::1", 600),
        report("fd72:b:0:1::1", 3600),
    ])
    .unwrap();
    assert_eq!(verdict(&d, "fd72:a:1:1::77"), BANNED);
    assert_eq!(verdict(&d, "fd72:a:1:ffff::9"), PASS);

    // /48: four /64 bans become two /48 bans (the operator's wins the merge).
    write(48);
    let summary = d.reload().unwrap();
    let widened = [
        verdict(&d, "fd72:a:1:ffff::9"),
        verdict(&d, "fd72:b:0:7::1"),
        verdict(&d, "fd72:c::1"),
    ];
    println!(
        "reload to /48: {summary}; verdicts {widened:?}; bans {:?}",
        v6_bans(&d)
    );
    assert_eq!(widened, [BANNED, BANNED, PASS]);
    assert_eq!(
        v6_bans(&d),
        [
            ("fd72:a:1::".to_string(), ORIGIN_CLI),
            ("fd72:b::".to_string(), ORIGIN_ESCALATION)
        ]
    );

    // /128: each /48 ban becomes the range it covered.
    write(128);
    let summary = d.reload().unwrap();
    let narrowed = [
        verdict(&d, "fd72:a:1:ffff::9"),
        verdict(&d, "fd72:b:0:7::1"),
        verdict(&d, "fd72:c::1"),
    ];
    let ranges: Vec<String> = d.with_filter(|f| {
        (f.maps.entries(List::Block).unwrap())
            .iter()
            .map(|(c, _)| c.to_string())
            .collect()
    });
    println!("reload to /128: {summary}; verdicts {narrowed:?}; ranges {ranges:?}");
    assert_eq!(narrowed, [BLOCKLISTED, BLOCKLISTED, PASS]);
    assert!(v6_bans(&d).is_empty());
    assert!(
        ranges.contains(&"fd72:a:1::/48".to_string())
            && ranges.contains(&"fd72:b::/48".to_string())
    );

    // A ban under /128, then a restart under /64: the pinned ban is keyed
    // again (no stale /128 key left behind).
    block(&d, "fd72:d::1", None);
    drop(d);
    write(64);
    let d = in_process::daemon(&config);
    assert_eq!(verdict(&d, "fd72:d::99"), BANNED);
    assert_eq!(v6_bans(&d), [("fd72:d::".to_string(), ORIGIN_CLI)]);
    let entries: Vec<Cidr> = d.state_file_entries().iter().map(|e| e.cidr).collect();
    assert!(
        entries.contains(&"fd72:d::".parse().unwrap())
            && !entries.contains(&"fd72:d::1".parse().unwrap()),
        "{entries:?}"
    );
    drop(d);
    drop(dir);
}
