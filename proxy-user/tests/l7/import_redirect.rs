//! `rampart config import nginx` (issue 19) of a redirect-only server on an
//! address a content server shares (also certbot's `if ($host = ...)` form,
//! which alone on its address is a server too): the imported configuration, run,
//! answers each host as nginx would (the Location and status nginx's
//! `return` gives, the content server's own answer, and the first server
//! on the address as the default for other hosts).

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::support::{client, proxy, send, test_dir};

const NGINX: &str = r#"
events {}
http {
    server {
        listen 127.0.0.1:0;
        server_name old.example.com;
        return 301 https://new.example.com$request_uri;
    }
    server {
        listen 127.0.0.1:0;
        server_name new.example.com;
        location / { return 200 "new"; }
    }
    server {
        listen 127.0.0.1:0;
        server_name alias.example.com alias.example.org;
        return 302 https://$server_name:8443$request_uri;
    }
    server {
        listen 127.0.0.1:0;
        server_name www.example.com;
        location / { return 308 https://$host$request_uri; }
    }
    server {
        if ($host = www.cert.example.com) {
            return 301 https://$host$request_uri;
        } # managed by Certbot

        if ($host = cert.example.com) {
            return 301 https://$host$request_uri;
        } # managed by Certbot

        listen 127.0.0.1:0;
        server_name cert.example.com www.cert.example.com legacy.example.com;
        return 404; # managed by Certbot
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_redirect_server_beside_a_site_redirects_only_its_hosts() {
    let dir = test_dir("import-redirect");
    let imported = proxy_user::import::nginx_text(NGINX, Path::new("/site/nginx.conf")).unwrap();
    assert!(imported.complete(), "{:#?}", imported.reports);
    let p = proxy(&dir, &imported.toml).await;
    let c = client();
    for (host, target, status, location) in [
        (
            "old.example.com",
            "/a/b?c=1&d",
            301,
            Some("https://new.example.com/a/b?c=1&d"),
        ),
        // Not decoded or normalised: $request_uri as the client sent it.
        (
            "OLD.example.com:80",
            "/x/../%41",
            301,
            Some("https://new.example.com/x/../%41"),
        ),
        ("new.example.com", "/a/b", 200, None),
        (
            "alias.example.org",
            "/p?q",
            302,
            Some("https://alias.example.com:8443/p?q"),
        ),
        (
            "WWW.example.com:8080",
            "/p",
            308,
            Some("https://www.example.com/p"),
        ),
        // certbot's `if ($host = ...)` server: its hosts are redirected,
        // a name it has no `if` for gets its `return 404`.
        (
            "www.cert.example.com",
            "/p?x=1",
            301,
            Some("https://www.cert.example.com/p?x=1"),
        ),
        (
            "CERT.example.com:80",
            "/",
            301,
            Some("https://cert.example.com/"),
        ),
        ("legacy.example.com", "/", 404, None),
        // No server of that name: nginx's default, the first on the address.
        ("unknown.test", "/z", 301, Some("https://new.example.com/z")),
    ] {
        let req = Request::get(format!("http://{}{target}", p.addrs[0]))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (got, h, body) = send(&c, req).await;
        assert_eq!(got.as_u16(), status, "{host}{target}");
        match location {
            Some(l) => assert_eq!(h["location"], l, "{host}{target}"),
            None if status == 200 => assert_eq!(&body[..], b"new", "{host}{target}"),
            None => assert!(h.get("location").is_none(), "{host}{target}"),
        }
    }
}

/// certbot's port-80 server alone on its address (its HTTPS server
/// elsewhere): its hosts are redirected, any other host gets its
/// `return 404`, as nginx; a listener-wide `redirect_https` would
/// redirect them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_certbot_server_alone_redirects_only_its_hosts() {
    let dir = test_dir("import-certbot-alone");
    let text = r#"
server {
    if ($host = example.com) {
        return 301 https://$host$request_uri;
    } # managed by Certbot

    listen 127.0.0.1:0;
    server_name example.com;
    return 404; # managed by Certbot
}
"#;
    let imported = proxy_user::import::nginx_text(text, Path::new("/site/nginx.conf")).unwrap();
    assert!(imported.complete(), "{:#?}", imported.reports);
    assert!(
        !imported.toml.contains("redirect_https"),
        "{}",
        imported.toml
    );
    let p = proxy(&dir, &imported.toml).await;
    let c = client();
    for (host, status, location) in [
        ("Example.com:80", 301, Some("https://example.com/p?q=1")),
        ("203.0.113.7", 404, None),
        ("other.example.net", 404, None),
    ] {
        let req = Request::get(format!("http://{}/p?q=1", p.addrs[0]))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (got, h, _) = send(&c, req).await;
        assert_eq!(got.as_u16(), status, "{host}");
        assert_eq!(
            h.get("location").map(|l| l.to_str().unwrap()),
            location,
            "{host}"
        );
    }
}
