//! Reloads of the daemon in process: a good one applies the new routes to
//! new connections while open connections and requests in flight go on; a
//! bad one (a file that does not parse, a listener that cannot bind)
//! changes nothing at all.

use std::time::Duration;

use proxy_user::{config::Config, control_socket::protocol::Request, state_file::ListName};

use crate::support::{backend, client, connect_from, get, proxy, status_from, status_on, test_dir};

fn config(backend: std::net::SocketAddr, extra_route: &str) -> String {
    format!(
        "[upstream.app]\nservers = [\"{backend}\"]\n\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         {extra_route}[[route]]\nupstream = \"app\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_connections_and_requests_in_flight() {
    let b = backend(1).await;
    let p = proxy(&test_dir("reload"), &config(b.addr, "")).await;
    let to = p.addr();
    let mut open = connect_from("127.0.0.2", to).await;
    assert_eq!(status_on(&mut open, "/new").await, Some(200));
    let slow = {
        let c = client();
        tokio::spawn(async move { get(&c, &format!("http://{to}/slow")).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    let route = "[[route]]\npath = \"/new\"\nrespond = 204\n\n";
    let reply = p.reload(&config(b.addr, route)).await;
    assert!(reply.ok, "{:?}", reply.error);
    assert_eq!(reply.data["applied"], "configuration applied");
    // New connections get the new configuration...
    assert_eq!(status_from("127.0.0.2", to, "/new").await, Some(204));
    // ...the open one stays open (it serves with the snapshot it was accepted with)...
    assert_eq!(status_on(&mut open, "/new").await, Some(200));
    // ...and the request in flight across the reload finishes.
    let (status, _, _) = slow.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(p.addr(), to, "the listener's socket stayed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_changes_nothing() {
    let b = backend(1).await;
    let start = format!(
        "[filter]\nblock = [\"127.0.0.9\"]\n\n{}",
        config(b.addr, "")
    );
    let p = proxy(&test_dir("badreload"), &start).await;
    let to = p.addr();
    p.ok(Request::ListAdd {
        list: ListName::Block,
        cidr: "127.0.0.8".parse().unwrap(),
        ttl_secs: None,
        reason: None,
        local: false,
    })
    .await;
    let unchanged = async || {
        assert_eq!(
            status_from("127.0.0.2", to, "/new").await,
            Some(200),
            "the old routes"
        );
        assert_eq!(
            status_from("127.0.0.9", to, "/").await,
            None,
            "the old blocklist"
        );
        assert_eq!(
            status_from("127.0.0.8", to, "/").await,
            None,
            "the CLI's ban"
        );
        assert_eq!(status_from("127.0.0.7", to, "/").await, Some(200));
    };
    unchanged().await;

    // A file that does not parse: its error names the place.
    let reply = p.reload("[filter]\nblock = [\"10.1.2.3/8\"]\n").await;
    let e = reply.error.unwrap();
    assert!(
        e.contains("reload failed, the running configuration stays")
            && e.contains(&format!("{}:2:10", p.path.display())),
        "{e}"
    );
    unchanged().await;

    // A valid file whose new listener cannot bind (the port is taken):
    // nothing of it applies, not its routes, not its lists.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let next = format!(
        "[filter]\nblock = [\"127.0.0.7\"]\n\n{}\n[[listener]]\nbind = \"{}\"\n",
        config(b.addr, "[[route]]\npath = \"/new\"\nrespond = 204\n\n"),
        taken.local_addr().unwrap()
    );
    let e = p.reload(&next).await.error.unwrap();
    assert!(e.contains("binding"), "{e}");
    unchanged().await;

    // The same through Handle::reload, with a configuration given as a value.
    let mut value = Config::parse(&next, "next.toml".as_ref()).unwrap();
    value.control.state_file = p.dir.join("state.json");
    assert!(p.handle().reload(value).await.is_err());
    unchanged().await;
    let limits = p.ok(Request::LimitShow).await;
    assert_eq!(
        limits[0]["rate"],
        serde_json::Value::Null,
        "no syn limit appeared"
    );
}

/// Issue 15: a reload put the configuration in force first and the CLI's
/// changes over it after, so for a moment the configured connection rate
/// was in force over `limit set syn`, a zone's configured rate over `limit
/// set ZONE`, and a new group's server took requests though drained. A
/// thread reads all three through 100 reloads (each builds the zone and
/// the group anew): it must only ever see the CLI's values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_never_puts_configured_values_in_force_over_the_clis() {
    let b = backend(1).await;
    let text = |n: usize| {
        format!(
            "[filter]\nsyn = {{ rate = 1000 }}\n\n\
             [limit.api]\nrate = \"1000r/s\"\nmax_clients = {}\n\n\
             [upstream.app]\nservers = [\"{}\"]\nkeepalive = {}\n\n\
             [[listener]]\nbind = \"127.0.0.1:0\"\n\n\
             [[route]]\npath = \"/{n}\"\nrespond = 204\n\n\
             [[route]]\nlimit = \"api\"\nupstream = \"app\"\n",
            1000 + n,
            b.addr,
            n % 2
        )
    };
    let p = proxy(&test_dir("reload-rate"), &text(0)).await;
    for (name, rate) in [("syn", "5"), ("api", "5r/s")] {
        p.ok(Request::LimitSet {
            name: name.into(),
            rate: Some(rate.into()),
            burst: Some(5),
        })
        .await;
    }
    p.ok(Request::UpstreamDrain {
        server: format!("app/{}", b.addr),
        drained: true,
    })
    .await;
    let gate = p.handle().services().gate.clone();
    let in_force = move |shared: &proxy_user::http::SharedState| {
        let state = shared.load();
        (
            gate.rate(),
            state.limiters["api"].rate(),
            state.groups["app"].backends()[0].drained(),
        )
    };
    let cli = (Some((5, 5)), 5000, true);
    assert_eq!(in_force(&p.shared), cli);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (shared, stop) = (p.shared.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut reads, mut wrong) = (0u64, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let now = in_force(&shared);
                if now != cli {
                    wrong.push(now);
                }
                reads += 1;
            }
            (reads, wrong)
        })
    };
    for n in 1..=100 {
        let reply = p.reload(&text(n)).await;
        assert!(reply.ok, "{:?}", reply.error);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (reads, wrong) = watcher.join().unwrap();
    let off = |i: usize| {
        wrong
            .iter()
            .filter(|w| match i {
                0 => w.0 != cli.0,
                1 => w.1 != cli.1,
                _ => w.2 != cli.2,
            })
            .count()
    };
    println!(
        "figure: {reads} reads over 100 reloads; not the CLI's: connection rate {}, zone rate {}, \
         drain {}",
        off(0),
        off(1),
        off(2)
    );
    assert!(
        wrong.is_empty(),
        "seen in force: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(status_from("127.0.0.2", p.addr(), "/100").await, Some(204));
}

/// Two listeners on `127.0.0.1:0` (a plain one, then one that redirects to
/// https) are two listeners after a reload too: each keeps its own
/// settings. Reloads matched listeners by their `bind` text, so both new
/// listeners took the first old one, which then redirected, and new
/// connections to the plain listener got 301s (seen as a flaky
/// `proxying::dead_servers_are_retried_around_and_marked_failed`).
#[tokio::test]
async fn listeners_with_the_same_bind_keep_their_own_settings_across_a_reload() {
    let dir = test_dir("same-bind");
    let config = |status: u16| {
        format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
             [[listener]]\nbind = \"127.0.0.1:0\"\nredirect_https = true\n\n\
             [[route]]\nrespond = {status}\n"
        )
    };
    let p = proxy(&dir, &config(200)).await;
    let (plain, redirect) = (p.addrs[0], p.addrs[1]);
    assert_eq!(status_from("127.0.0.1", plain, "/").await, Some(200));
    assert_eq!(status_from("127.0.0.1", redirect, "/").await, Some(301));
    let reply = p.reload(&config(204)).await;
    assert!(reply.ok, "{:?}", reply.error);
    // New connections: each listener as configured.
    assert_eq!(status_from("127.0.0.1", plain, "/").await, Some(204));
    assert_eq!(status_from("127.0.0.1", redirect, "/").await, Some(301));
    assert_eq!(p.handle().listeners(), [plain, redirect]);
}

/// Adding a `[filter]` section without fleet thresholds is applied by the
/// reload: only `fleet_pps`/`fleet_syn` changes need a restart, and no
/// `[filter]` reads as none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_section_without_fleet_thresholds_reloads_without_a_restart_note() {
    let b = backend(1).await;
    let p = proxy(&test_dir("filterreload"), &config(b.addr, "")).await;
    let with_filter = format!(
        "[filter]\nblock = [\"127.0.0.9\"]\n\n{}",
        config(b.addr, "")
    );
    let reply = p.reload(&with_filter).await;
    assert!(reply.ok, "{:?}", reply.error);
    assert_eq!(reply.data["applied"], "configuration applied");
    let reply = p.reload(&config(b.addr, "")).await;
    assert!(reply.ok, "{:?}", reply.error);
    assert_eq!(reply.data["applied"], "configuration applied");
}
