//! Backup servers (nginx `server ... backup`): they take requests only
//! while no primary server of the group is available, and give them back
//! when a primary returns.

use std::{
    sync::atomic::Ordering::Relaxed,
    time::{Duration, Instant},
};

use hyper::StatusCode;
use proxy_user::control_socket::protocol::{Request, ServerView};

use crate::support::{backend, backend_at, client, get, proxy, test_dir};

/// An address nothing listens on (the listener is closed again).
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(primaries: &[String], backup: &str) -> String {
    let mut servers: Vec<String> = primaries.iter().map(|a| format!("\"{a}\"")).collect();
    servers.push(format!("{{ addr = \"{backup}\", backup = true }}"));
    format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n\n[[listener]]\nbind = \"127.0.0.1:0\"\n\n\
         [upstream.app]\nbalance = \"least_conn\"\nservers = [{}]\n\
         max_fails = 1\nfail_timeout = \"1s\"\nkeepalive = 0\n\n[[route]]\nupstream = \"app\"\n",
        servers.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_serves_only_while_every_primary_is_down() {
    let (p0, standby) = (backend(0).await, backend(2).await);
    let dead = dead_addr();
    let primaries = [p0.addr.to_string(), dead.to_string()];
    let p = proxy(
        &test_dir("backup"),
        &config(&primaries, &standby.addr.to_string()),
    )
    .await;
    let c = client();
    let url = format!("http://{}/x", p.addr());

    // One primary up, one dead: the live primary takes everything (the
    // dead one's failed connect is retried on the other primary, not on
    // the backup), and the backup nothing.
    for _ in 0..20 {
        assert_eq!(get(&c, &url).await.0, StatusCode::OK);
    }
    assert_eq!(p0.hits.load(Relaxed), 20);
    assert_eq!(standby.hits.load(Relaxed), 0, "no primary down for long");

    // `upstream list` and /metrics say which server is the backup.
    let list: Vec<ServerView> = serde_json::from_value(p.ok(Request::UpstreamList).await).unwrap();
    let roles: Vec<(String, bool)> = list.iter().map(|v| (v.addr.clone(), v.backup)).collect();
    assert_eq!(
        roles,
        [
            (p0.addr.to_string(), false),
            (dead.to_string(), false),
            (standby.addr.to_string(), true)
        ]
    );
    let admin = p.handle().admin().expect("an admin listener");
    let metrics = get(&c, &format!("http://{admin}/metrics")).await.2;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains(&format!(
            "rampart_upstream_backup{{group=\"app\",server=\"{}\"}} 1",
            standby.addr
        )) && metrics.contains(&format!(
            "rampart_upstream_backup{{group=\"app\",server=\"{}\"}} 0",
            p0.addr
        )),
        "{metrics}"
    );

    // Every primary down: the backup answers, with no request lost.
    let p0_addr = p0.addr;
    drop(p0);
    for _ in 0..10 {
        let (status, _, body) = get(&client(), &url).await;
        assert_eq!(status, StatusCode::OK, "served by the backup");
        assert_eq!(crate::support::json(&body)["id"], 2);
    }
    let standby_hits = standby.hits.load(Relaxed);
    assert_eq!(standby_hits, 10);

    // A primary comes back: once its fail_timeout is over it takes the
    // requests again and the backup is left alone.
    let revived = backend_at(0, p0_addr).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while revived.hits.load(Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the primary never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
        get(&client(), &url).await;
    }
    let standby_hits = standby.hits.load(Relaxed);
    for _ in 0..10 {
        assert_eq!(get(&client(), &url).await.0, StatusCode::OK);
    }
    assert_eq!(
        standby.hits.load(Relaxed),
        standby_hits,
        "back to the primary"
    );
    assert!(revived.hits.load(Relaxed) >= 10);
    println!(
        "figure: backup hits 0 while a primary is up, 10/10 with every primary down, 0 more after it returns"
    );
}
