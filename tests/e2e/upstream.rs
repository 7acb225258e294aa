//! `rampart upstream` against the real daemon, in a namespace of its own:
//! drain (in-flight requests finish, new ones go elsewhere), undrain,
//! weights, and a blue-green switch under load with no failed request; the
//! changes survive a restart.

use std::{path::PathBuf, time::Duration};

use serde_json::Value;
use tests::{
    backend::{http_get, named_backend},
    daemon::{cli, control_section, rampart_bin},
    load::{Load, Plan},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

/// One GET to the edge's listener inside the namespace.
fn get(ns: &NetNs, path: &str) -> Result<String, String> {
    http_get(ns, "127.0.0.1:8080", path)
}

struct Edge {
    ns: NetNs,
    dir: tests::scratch::Scratch,
    config: PathBuf,
}

impl Edge {
    fn start(&self) -> Spawned {
        let mut cmd = self.ns.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"]).arg(&self.config);
        let mut d = Spawned::start("rampart", cmd, &self.dir.join("rampart.log"));
        d.wait_until(Duration::from_secs(15), || get(&self.ns, "/").is_ok());
        d
    }

    fn ctl(&self, args: &[&str]) -> Value {
        let mut all = vec!["-j", "-c", self.config.to_str().unwrap(), "upstream"];
        all.extend_from_slice(args);
        let (ok, out, err) = cli(&self.ns, &all);
        assert!(ok, "rampart upstream {args:?}: {err}");
        serde_json::from_str(&out).unwrap()
    }

    fn server(&self, addr: &str) -> Value {
        let list = self.ctl(&["list"]);
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["addr"] == addr)
            .cloned()
            .unwrap()
    }
}

#[test]
fn drain_weight_and_blue_green_switch_without_a_failed_request() {
    if !require_root("drain_weight_and_blue_green_switch_without_a_failed_request") {
        return;
    }
    let ns = NetNs::new("ups");
    ns.ip(&["link", "set", "lo", "up"]);
    named_backend(&ns, 9001, "blue1");
    named_backend(&ns, 9002, "blue2");
    named_backend(&ns, 9003, "green");
    let dir = tests::scratch::Scratch::new("upstream");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:8080\"\n\n\
             [upstream.blue]\nservers = [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n\n\
             [upstream.green]\nservers = [\"127.0.0.1:9003\"]\n\n\
             [limit.api]\nrate = \"100000r/s\"\nburst = 10000\nnodelay = true\n\n\
             [[route]]\nupstream = \"blue\"\nlimit = \"api\"\n\n{}",
            control_section(&dir)
        ),
    )
    .unwrap();
    let edge = Edge { ns, dir, config };
    let daemon = edge.start();
    assert_eq!(edge.ctl(&["list"]).as_array().unwrap().len(), 3);

    // Drain blue1 while slow requests are in flight on both blue servers:
    // every one of them finishes, and new requests all go to blue2.
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let ns_name = edge.ns.name().to_string();
            std::thread::spawn(move || {
                let ns = NetNs::existing(&ns_name);
                get(&ns, "/slow")
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let drained = edge.ctl(&["drain", "127.0.0.1:9001"]);
    assert_eq!(drained["drained"], true);
    assert!(drained["in_flight"].as_u64().unwrap() >= 1, "{drained}");
    for _ in 0..20 {
        assert_eq!(get(&edge.ns, "/").unwrap(), "blue2");
    }
    let served: Vec<String> = slow
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert!(served.contains(&"blue1".to_string()), "{served:?}");
    assert_eq!(edge.server("127.0.0.1:9001")["state"], "drained");
    edge.ctl(&["undrain", "blue/127.0.0.1:9001"]);
    let bodies: Vec<String> = (0..10).map(|_| get(&edge.ns, "/").unwrap()).collect();
    assert!(bodies.contains(&"blue1".to_string()), "{bodies:?}");
    assert_eq!(edge.ctl(&["weight", "127.0.0.1:9002", "3"])["weight"], 3);

    // Blue-green under steady load: no request fails, and after the switch
    // every request is served by green.
    let load = Load::start(&edge.ns, Plan::steady("127.0.0.1:8080", "/"));
    std::thread::sleep(Duration::from_secs(1));
    let switched = edge.ctl(&["switch", "blue", "--to", "green"]);
    assert_eq!(switched["to"], "green");
    std::thread::sleep(Duration::from_secs(1));
    let report = load.stop();
    println!("blue-green switch under load: {}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.ok > 10, "{}", report.summary());
    for _ in 0..10 {
        assert_eq!(get(&edge.ns, "/").unwrap(), "green");
    }

    // A restart keeps the weight and the switch (the state file).
    let mut daemon = daemon;
    daemon.terminate();
    let daemon = edge.start();
    assert_eq!(edge.server("127.0.0.1:9002")["weight"], 3);
    assert_eq!(edge.server("127.0.0.1:9001")["switched_to"], "green");
    assert_eq!(get(&edge.ns, "/").unwrap(), "green");
    edge.ctl(&["switch", "blue", "--to", "blue"]);
    assert!(get(&edge.ns, "/").unwrap().starts_with("blue"));

    // An L7 zone tightened from the CLI applies at once: quick requests
    // beyond the new burst are refused (429); `reset` restores the zone.
    let (ok, _, err) = cli(
        &edge.ns,
        &[
            "-c",
            edge.config.to_str().unwrap(),
            "limit",
            "set",
            "api",
            "--rate",
            "1r/m",
            "--burst",
            "1",
        ],
    );
    assert!(ok, "{err}");
    let results: Vec<Result<String, String>> = (0..4).map(|_| get(&edge.ns, "/")).collect();
    assert!(results[0].is_ok(), "{results:?}");
    let refused = results[3].as_ref().unwrap_err();
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    let (ok, out, _) = cli(
        &edge.ns,
        &[
            "-j",
            "-c",
            edge.config.to_str().unwrap(),
            "ip",
            "show",
            "127.0.0.1",
        ],
    );
    assert!(ok);
    let ip: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ip["l7_limits"][0]["zone"], "api");
    assert!(
        // About one request queued, draining at 1r/m since.
        ip["l7_limits"][0]["queued"].as_f64().unwrap() > 0.9,
        "{ip}"
    );
    let (ok, _, _) = cli(
        &edge.ns,
        &["-c", edge.config.to_str().unwrap(), "limit", "reset", "api"],
    );
    assert!(ok);
    assert!(get(&edge.ns, "/").is_ok());

    // `stats`: requests by status class for the route, and per server
    // (since the restart above: L7 counters live in the daemon).
    let (ok, out, err) = cli(
        &edge.ns,
        &["-j", "-c", edge.config.to_str().unwrap(), "stats"],
    );
    assert!(ok, "{err}");
    let stats: Value = serde_json::from_str(&out).unwrap();
    let route = &stats["l7"]["routes"][0];
    assert_eq!(route["route"], "any path");
    assert!(route["2xx"].as_u64().unwrap() >= 3, "{stats}");
    assert!(route["4xx"].as_u64().unwrap() >= 1, "the 429s: {stats}");
    let green = stats["l7"]["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["group"] == "green")
        .unwrap();
    assert!(green["requests"].as_u64().unwrap() >= 1, "{stats}");

    // The admin listener (loopback, default port): health, readiness and
    // the Prometheus metrics of all of the above.
    let admin = |path: &str| http_get(&edge.ns, "127.0.0.1:9901", path);
    assert_eq!(admin("/healthz").unwrap(), "ok\n");
    assert_eq!(admin("/readyz").unwrap(), "ready\n");
    let metrics = admin("/metrics").unwrap();
    let value = |line_start: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in:\n{metrics}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(value("rampart_route_requests_total{route=\"any path\",class=\"2xx\"}") >= 3.0);
    assert!(value("rampart_route_requests_total{route=\"any path\",class=\"4xx\"}") >= 1.0);
    assert!(value("rampart_route_request_duration_seconds_count{route=\"any path\"}") >= 4.0);
    assert!(
        value("rampart_route_upstream_duration_seconds_bucket{route=\"any path\",le=\"+Inf\"}")
            >= 3.0
    );
    assert_eq!(
        value("rampart_upstream_state{group=\"green\",server=\"127.0.0.1:9003\",state=\"up\"}"),
        1.0
    );
    assert!(
        value("rampart_listener_connections_accepted_total{listener=\"127.0.0.1:8080\"}") >= 4.0
    );
    assert!(value("rampart_listener_backlog_max{listener=\"127.0.0.1:8080\"}") > 0.0);
    assert_eq!(
        value("rampart_listener_backlog{listener=\"127.0.0.1:8080\"}"),
        0.0
    );
    assert!(value("rampart_limit_requests_total{zone=\"api\",outcome=\"rejected\"}") >= 1.0);
    assert!(
        value(
            "rampart_upstream_responses_total{group=\"green\",server=\"127.0.0.1:9003\",class=\"2xx\"}"
        ) >= 1.0
    );
    assert!(
        value(
            "rampart_upstream_response_duration_seconds_count{group=\"green\",server=\"127.0.0.1:9003\"}"
        ) >= 1.0
    );
    assert!(metrics.contains("# TYPE rampart_route_request_duration_seconds histogram"));
    drop(daemon);
}
