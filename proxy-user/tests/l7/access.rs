//! A route's `access` rules with real clients: 127.0.0.2 and 127.0.0.3 are
//! two sources, and behind a trusted proxy (127.0.0.1) the client it names
//! is the one the rules see.

use hyper::StatusCode;

use crate::{
    real_ip::get_from,
    support::{proxy, test_dir},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_rules_refuse_by_real_client_address_first_match_wins() {
    let dir = test_dir("access");
    let config = "[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\n\
         [[route]]\npath = \"/admin\"\nrespond = 200\nbody = \"admin\"\n\
         access = [\"deny 127.0.0.3\", \"allow 127.0.0.0/8\", \"allow 198.51.100.0/24\", \"deny all\"]\n\
         [[route]]\npath = \"/\"\nrespond = 200\nbody = \"open\"\n";
    let p = proxy(&dir, config).await;
    let to = p.addr();
    let status = |src, path, xff| async move { get_from(src, to, path, xff).await.0 };
    assert_eq!(status("127.0.0.2", "/admin", None).await, StatusCode::OK);
    // First match wins: the deny before the allow of all of 127/8.
    assert_eq!(
        status("127.0.0.3", "/admin", None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status("127.0.0.3", "/", None).await,
        StatusCode::OK,
        "other routes stay open"
    );
    // Behind the trusted proxy, the named client decides, not the proxy.
    assert_eq!(
        status("127.0.0.1", "/admin", Some("198.51.100.7")).await,
        StatusCode::OK
    );
    assert_eq!(
        status("127.0.0.1", "/admin", Some("203.0.113.7")).await,
        StatusCode::FORBIDDEN
    );
    // An untrusted peer cannot claim an allowed address.
    let (s, _) = get_from("127.0.0.3", to, "/admin", Some("198.51.100.7")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
