//! The daemon's control verbs in process: the requests `rampart block |
//! allow | limit | upstream` send over the control socket, carried out by
//! the daemon's main loop ([`proxy_user::daemon::Handle::command`]) and
//! checked by what they do to traffic (the userspace gate refuses or
//! admits a source, a zone rejects, a server takes requests or not), not
//! only by their replies. No privilege: sources are 127.0.0.2, .3, ...

use std::{net::SocketAddr, time::Duration};

use proxy_user::{control_socket::protocol::Request, state_file::ListName};
use serde_json::Value;

use crate::support::{
    backend, connect_from, eventually, json, proxy, status_from, status_on, test_dir,
};

fn block(cidr: &str, ttl_secs: Option<u64>) -> Request {
    Request::ListAdd {
        list: ListName::Block,
        cidr: cidr.parse().unwrap(),
        ttl_secs,
        reason: Some("a test".into()),
        local: false,
    }
}

fn allow(cidr: &str) -> Request {
    Request::ListAdd {
        list: ListName::Allow,
        cidr: cidr.parse().unwrap(),
        ttl_secs: None,
        reason: None,
        local: false,
    }
}

fn del(list: ListName, cidr: &str) -> Request {
    Request::ListDel {
        list,
        cidr: cidr.parse().unwrap(),
    }
}

fn shown<'a>(entries: &'a Value, cidr: &str) -> Option<&'a Value> {
    entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["cidr"] == cidr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_and_allow_change_who_is_served_at_once() {
    let p = proxy(
        &test_dir("lists"),
        "[filter]\nblock = [\"127.0.0.9\"]\n\n[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [[route]]\nrespond = 200\n",
    )
    .await;
    let to = p.addr();
    assert_eq!(status_from("127.0.0.2", to, "/").await, Some(200));
    assert_eq!(status_from("127.0.0.9", to, "/").await, None, "config");

    // A ban: the source's open connection closes, new ones are refused.
    let mut open = connect_from("127.0.0.2", to).await;
    assert_eq!(status_on(&mut open, "/").await, Some(200));
    let added = p.ok(block("127.0.0.2", None)).await;
    assert_eq!(
        (added["kind"].as_str(), added["origin"].as_str()),
        (Some("ban"), Some("cli"))
    );
    assert_eq!(status_on(&mut open, "/").await, None, "kicked");
    assert_eq!(status_from("127.0.0.2", to, "/").await, None);
    assert_eq!(status_from("127.0.0.3", to, "/").await, Some(200));
    let list = p
        .ok(Request::ListShow {
            list: ListName::Block,
        })
        .await;
    let ban = shown(&list, "127.0.0.2").expect("the ban is listed");
    assert_eq!(
        (ban["origin"].as_str(), ban["reason"].as_str()),
        (Some("cli"), Some("a test"))
    );
    assert_eq!(shown(&list, "127.0.0.9").unwrap()["origin"], "config");
    let state = std::fs::read_to_string(p.dir.join("state.json")).unwrap();
    assert!(
        state.contains("127.0.0.2"),
        "kept in the state file: {state}"
    );

    // The allowlist wins over bans and the blocklist, and only while it lists.
    p.ok(allow("127.0.0.0/29")).await;
    assert_eq!(status_from("127.0.0.2", to, "/").await, Some(200));
    p.ok(del(ListName::Allow, "127.0.0.0/29")).await;
    assert_eq!(status_from("127.0.0.2", to, "/").await, None);

    // What the configuration lists stays; the CLI's goes.
    let refused = p.command(del(ListName::Block, "127.0.0.9")).await;
    assert!(
        refused
            .error
            .unwrap()
            .contains("comes from the configuration")
    );
    p.ok(del(ListName::Block, "127.0.0.2")).await;
    assert_eq!(status_from("127.0.0.2", to, "/").await, Some(200));
    let again = p.command(del(ListName::Block, "127.0.0.2")).await;
    assert!(again.error.unwrap().contains("is not on the Block list"));

    // A range, for a second: the sweep lifts it.
    p.ok(block("127.0.0.16/30", Some(1))).await;
    assert_eq!(status_from("127.0.0.17", to, "/").await, None);
    eventually("the entry expires", Duration::from_secs(10), async || {
        status_from("127.0.0.17", to, "/").await == Some(200)
    })
    .await;
    let list = p
        .ok(Request::ListShow {
            list: ListName::Block,
        })
        .await;
    assert!(shown(&list, "127.0.0.16/30").is_none(), "{list}");
    // Out of range, whoever asks: refused before anything acts on it.
    assert!(!p.command(block("127.0.0.5", Some(0))).await.ok);
    assert_eq!(status_from("127.0.0.5", to, "/").await, Some(200));
}

const LIMITS: &str = "[filter]\nsyn = { rate = 1000 }\n\n\
                      [limit.api]\nrate = \"1000r/s\"\nburst = 100\nnodelay = true\n\n\
                      [[listener]]\nbind = \"127.0.0.1:0\"\n\n\
                      [[route]]\npath = \"/api/\"\nlimit = \"api\"\nrespond = 200\n\n\
                      [[route]]\nrespond = 200\n";

fn set(name: &str, rate: &str, burst: Option<u64>) -> Request {
    Request::LimitSet {
        name: name.into(),
        rate: Some(rate.into()),
        burst,
    }
}

fn limit<'a>(shown: &'a Value, name: &str) -> &'a Value {
    shown
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no limit {name}: {shown}"))
}

/// Statuses of `n` requests from `src`, each on its own connection.
async fn statuses(src: &str, to: SocketAddr, path: &str, n: usize) -> Vec<Option<u16>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(status_from(src, to, path).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_set_and_reset_change_the_connection_rate_and_a_zone_at_once() {
    let p = proxy(&test_dir("limits"), LIMITS).await;
    let to = p.addr();
    let shown = p.ok(Request::LimitShow).await;
    assert_eq!(limit(&shown, "syn")["tier"], "userspace");
    assert_eq!(limit(&shown, "syn")["rate"], "1000r/s");
    assert_eq!(limit(&shown, "api")["source"], "config");
    assert_eq!(statuses("127.0.0.2", to, "/api/x", 5).await, [Some(200); 5]);

    // An L7 zone: one request a minute, no burst.
    p.ok(set("api", "1r/m", Some(0))).await;
    assert_eq!(
        statuses("127.0.0.3", to, "/api/x", 3).await,
        [Some(200), Some(429), Some(429)]
    );
    assert_eq!(
        status_from("127.0.0.3", to, "/").await,
        Some(200),
        "other routes"
    );
    let shown = p.ok(Request::LimitShow).await;
    assert_eq!(
        (
            limit(&shown, "api")["rate"].as_str(),
            limit(&shown, "api")["source"].as_str()
        ),
        (Some("1r/m"), Some("cli"))
    );
    p.ok(Request::LimitReset { name: "api".into() }).await;
    assert_eq!(statuses("127.0.0.4", to, "/api/x", 3).await, [Some(200); 3]);

    // The connection rate the gate enforces: one, then refused.
    p.ok(set("syn", "1", Some(1))).await;
    assert_eq!(
        statuses("127.0.0.5", to, "/", 3).await,
        [Some(200), None, None]
    );
    assert_eq!(
        limit(&p.ok(Request::LimitShow).await, "syn")["rate"],
        "1r/s"
    );
    p.ok(Request::LimitReset { name: "syn".into() }).await;
    assert_eq!(statuses("127.0.0.6", to, "/", 5).await, [Some(200); 5]);

    let e = p.command(set("pps", "10", None)).await.error.unwrap();
    assert!(
        e.contains("without the XDP filter there is no packet rate limit"),
        "{e}"
    );
    let e = p.command(set("nosuch", "5r/s", None)).await.error.unwrap();
    assert!(e.contains("no limit nosuch"), "{e}");
    let e = p
        .command(Request::LimitReset { name: "api".into() })
        .await
        .error
        .unwrap();
    assert!(e.contains("was not changed from the CLI"), "{e}");
}

/// Which backend (by id) answers each of `n` requests.
async fn answered_by(to: SocketAddr, n: usize) -> Vec<u64> {
    let c = crate::support::client();
    let mut ids = Vec::new();
    for _ in 0..n {
        let (status, _, body) = crate::support::get(&c, &format!("http://{to}/")).await;
        assert_eq!(status, 200);
        ids.push(json(&body)["id"].as_u64().unwrap());
    }
    ids
}

fn count(ids: &[u64], id: u64) -> usize {
    ids.iter().filter(|i| **i == id).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_verbs_drain_weigh_and_switch_servers() {
    let (b1, b2, b3) = (backend(1).await, backend(2).await, backend(3).await);
    let config = format!(
        "[upstream.app]\nservers = [\"{}\", \"{}\"]\nbalance = \"round_robin\"\n\n\
         [upstream.green]\nservers = [\"{}\"]\n\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\n\n[[route]]\nupstream = \"app\"\n",
        b1.addr, b2.addr, b3.addr
    );
    let p = proxy(&test_dir("upstreams"), &config).await;
    let to = p.addr();
    let list = p.ok(Request::UpstreamList).await;
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
    let ids = answered_by(to, 10).await;
    assert_eq!((count(&ids, 1), count(&ids, 2)), (5, 5));

    // Drained: a request in flight to it finishes; new ones go elsewhere.
    let slow = {
        let c = crate::support::client();
        let at = format!("http://{to}/slow");
        tokio::spawn(async move { crate::support::get(&c, &at).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = |b: &crate::support::Backend| format!("app/{}", b.addr);
    let slowed_by = |list: &Value| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["in_flight"] == 1)
            .map(|s| s["addr"].as_str().unwrap().to_string())
            .expect("one request in flight")
    };
    let busy = slowed_by(&p.ok(Request::UpstreamList).await);
    let (busy_id, idle_id) = if busy == b1.addr.to_string() {
        (1, 2)
    } else {
        (2, 1)
    };
    let drained = p
        .ok(Request::UpstreamDrain {
            server: format!("app/{busy}"),
            drained: true,
        })
        .await;
    assert_eq!(drained["in_flight"], 1);
    assert_eq!(count(&answered_by(to, 6).await, busy_id), 0);
    let (status, _, body) = slow.await.unwrap();
    assert_eq!(
        (status.as_u16(), json(&body)["id"].as_u64()),
        (200, Some(busy_id))
    );
    p.ok(Request::UpstreamDrain {
        server: format!("app/{busy}"),
        drained: false,
    })
    .await;
    let ids = answered_by(to, 6).await;
    assert_eq!((count(&ids, busy_id), count(&ids, idle_id)), (3, 3));

    // Weights: round robin by them.
    let weighed = p
        .ok(Request::UpstreamWeight {
            server: server(&b2),
            weight: 3,
        })
        .await;
    assert_eq!(weighed["weight"], 3);
    let ids = answered_by(to, 8).await;
    assert_eq!((count(&ids, 1), count(&ids, 2)), (2, 6));
    let e = p
        .command(Request::UpstreamWeight {
            server: server(&b2),
            weight: 0,
        })
        .await
        .error
        .unwrap();
    assert!(e.contains("expected 1 to 1000"), "{e}");

    // Blue-green: the group's traffic to another group, and back.
    p.ok(Request::UpstreamSwitch {
        group: "app".into(),
        to: Some("green".into()),
    })
    .await;
    assert_eq!(answered_by(to, 4).await, [3; 4]);
    p.ok(Request::UpstreamSwitch {
        group: "app".into(),
        to: None,
    })
    .await;
    assert_eq!(count(&answered_by(to, 4).await, 3), 0);
    let e = p
        .command(Request::UpstreamDrain {
            server: "app/192.0.2.1:80".into(),
            drained: true,
        })
        .await
        .error
        .unwrap();
    assert!(e.contains("no upstream server"), "{e}");

    // Kept in the state file, and applied again to the groups a reload builds.
    let state = std::fs::read_to_string(p.dir.join("state.json")).unwrap();
    assert!(state.contains(&server(&b2)), "{state}");
    let reloaded = config.replace("round_robin\"", "round_robin\"\nmax_fails = 3");
    assert!(p.reload(&reloaded).await.ok);
    let ids = answered_by(to, 8).await;
    assert_eq!((count(&ids, 1), count(&ids, 2)), (2, 6), "the weight holds");
}
