//! Escalation in process: a source that passes an `[escalate.NAME]` rule
//! is banned by the daemon's main loop, in the userspace gate, with the
//! rule and its evidence as the reason; its open connections are closed
//! and new ones refused at accept. An allowlisted source is never banned.

use std::time::Duration;

use proxy_user::{control_socket::protocol::Request, state_file::ListName};
use tokio::io::AsyncReadExt;

use crate::support::{connect_from, eventually, proxy, status_from, status_on, test_dir};

const CONFIG: &str = "[filter]\nallow = [\"127.0.0.3\"]\n\n\
                      [escalate.scanners]\nstatuses = [404]\ncount = 3\nwithin = \"1m\"\nban = \"1h\"\n\n\
                      [[listener]]\nbind = \"127.0.0.1:0\"\n\n\
                      [[route]]\npath_regex = '\\.(env|git)$'\nrespond = 404\nescalate = \"scanners\"\n\n\
                      [[route]]\nrespond = 200\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abusive_source_is_banned_and_its_connections_closed() {
    let p = proxy(&test_dir("escalate"), CONFIG).await;
    let to = p.addr();
    let mut open = connect_from("127.0.0.2", to).await;
    assert_eq!(status_on(&mut open, "/").await, Some(200));
    // Three probes are within the rule; the fourth passes it.
    for _ in 0..4 {
        assert_eq!(status_from("127.0.0.2", to, "/.env").await, Some(404));
    }
    let banned = async || {
        let list = p
            .ok(Request::ListShow {
                list: ListName::Block,
            })
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .find(|e| e["cidr"] == "127.0.0.2")
            .cloned()
    };
    eventually("the auto-ban", Duration::from_secs(2), async || {
        banned().await.is_some()
    })
    .await;
    let ban = banned().await.unwrap();
    assert_eq!(ban["origin"], "auto-ban", "{ban}");
    let reason = ban["reason"].as_str().unwrap();
    assert!(
        reason.contains("escalate.scanners") && reason.contains("4 responses 404"),
        "{reason}"
    );
    assert!(ban["expires_in"].as_u64().unwrap() > 3500, "{ban}");
    // Its open connection is closed (a moment after the ban, so that the
    // response that passed the rule still reaches it), and it gets no new one.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(2), open.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0) | Err(_))), "kicked: {closed:?}");
    assert_eq!(status_from("127.0.0.2", to, "/").await, None);
    let ip = p
        .ok(Request::IpShow {
            addr: "127.0.0.2".parse().unwrap(),
        })
        .await;
    assert_eq!(
        (ip["verdict"].as_str(), ip["enforced_in"].as_str()),
        (Some("banned"), Some("userspace"))
    );

    // The allowlisted source probes as much as it likes.
    for _ in 0..10 {
        assert_eq!(status_from("127.0.0.3", to, "/.git").await, Some(404));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_from("127.0.0.3", to, "/").await, Some(200));
    let list = p
        .ok(Request::ListShow {
            list: ListName::Block,
        })
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let stats = p.ok(Request::Stats).await;
    assert!(
        stats["userspace_gate"]["banned"].as_u64().unwrap() >= 1,
        "{stats}"
    );
}
