//! A trusted proxy in front: its `X-Forwarded-For` names the client, and
//! everything keyed on a client uses that address. The "proxy" is this
//! test's client on 127.0.0.1 (trusted); 127.0.0.2 is an untrusted peer.

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

use crate::support::{backend, eventually, json, proxy, test_dir};

/// One request from `src` with `X-Forwarded-For: xff` (if any).
pub async fn get_from(
    src: &str,
    to: SocketAddr,
    path: &str,
    xff: Option<&str>,
) -> (StatusCode, Bytes) {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let tcp = s.connect(to).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", "app.test");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        send.send_request(req.body(Full::new(Bytes::new())).unwrap()),
    )
    .await
    .expect("answered")
    .unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_names_the_client_for_headers_limits_escalation_and_bans() {
    let b = backend(1).await;
    let dir = test_dir("real-ip");
    let config = format!(
        "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [control]\nsocket = \"{0}/control.sock\"\nstate_file = \"{0}/state.json\"\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\n\
         [upstream.app]\nservers = [\"{1}\"]\n\
         [limit.one]\nrate = \"1r/m\"\nnodelay = true\n\
         [escalate.probes]\nstatuses = [404]\ncount = 2\nwithin = \"1m\"\nban = \"1h\"\n\
         [[route]]\npath = \"/limited\"\nupstream = \"app\"\nlimit = \"one\"\n\
         [[route]]\npath = \"/\"\nupstream = \"app\"\nescalate = \"probes\"\n",
        dir.display(),
        b.addr
    );
    let p = proxy(&dir, &config).await;
    let to = p.addr();
    let state = p.shared.load();
    // The userspace gate enforces (no XDP in this test): the proxy's own
    // connections must stay admitted whatever its clients do.
    state.services.gate.activate();

    // Headers to the upstream: the real client, whatever the client claimed
    // further left (its own word) and whatever trusted hops added.
    let (s, body) = get_from("127.0.0.1", to, "/", Some("6.6.6.6, 198.51.100.7")).await;
    assert_eq!(s, StatusCode::OK);
    let h = &json(&body)["headers"];
    assert_eq!(h["x-forwarded-for"], "198.51.100.7", "{h}");
    assert_eq!(h["x-real-ip"], "198.51.100.7", "{h}");
    // An untrusted peer's X-Forwarded-For is its own word: ignored.
    let (_, body) = get_from("127.0.0.2", to, "/", Some("198.51.100.7")).await;
    assert_eq!(json(&body)["headers"]["x-forwarded-for"], "127.0.0.2");

    // Limits are per real client: two clients behind one proxy have a
    // budget each.
    let limited = |xff| get_from("127.0.0.1", to, "/limited", Some(xff));
    assert_eq!(limited("198.51.100.7").await.0, StatusCode::OK);
    assert_eq!(
        limited("198.51.100.7").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(limited("198.51.100.8").await.0, StatusCode::OK);

    // Escalation reports the real client, and the ban it becomes is
    // enforced at L7 for that client only: the proxy stays admitted.
    for _ in 0..3 {
        let (s, _) = get_from("127.0.0.1", to, "/status/404", Some("198.51.100.9")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let gate = p.handle().services().gate.clone();
    eventually("the auto-ban", Duration::from_secs(2), async || {
        gate.banned("198.51.100.9".parse().unwrap())
    })
    .await;
    // Requests that came without the header name the proxy itself: its
    // report is declined, as the kernel tier never bans a trusted proxy.
    for _ in 0..3 {
        let (s, _) = get_from("127.0.0.1", to, "/status/404", None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    // One round trip through the main loop, which handles reports in order.
    p.ok(proxy_user::control_socket::protocol::Request::Stats)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!gate.banned("127.0.0.1".parse().unwrap()));

    let hits = b.hits.load(std::sync::atomic::Ordering::Relaxed);
    let (s, _) = get_from("127.0.0.1", to, "/", Some("198.51.100.9")).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the banned client, behind the proxy"
    );
    assert_eq!(
        b.hits.load(std::sync::atomic::Ordering::Relaxed),
        hits,
        "not forwarded"
    );
    assert_eq!(gate.refused_behind_proxy(), 1);
    let (s, _) = get_from("127.0.0.1", to, "/", Some("198.51.100.10")).await;
    assert_eq!(s, StatusCode::OK, "another client behind the same proxy");

    // The operator cannot ban the proxy by hand either.
    let reply = p
        .command(proxy_user::control_socket::protocol::Request::ListAdd {
            list: proxy_user::state_file::ListName::Block,
            cidr: "127.0.0.1".parse().unwrap(),
            ttl_secs: Some(60),
            reason: None,
            local: false,
        })
        .await;
    assert!(!reply.ok, "{reply:?}");
    assert!(
        format!("{reply:?}").contains("covers the trusted proxy"),
        "{reply:?}"
    );
}
