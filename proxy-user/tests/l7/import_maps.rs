//! `rampart config import nginx` (issue 19) of `map`s: a `$uri` redirect
//! map used by a server-level `if ($VAR) { return 301 $VAR; }`, a
//! `hostnames` `$host` map with wildcard and regex keys choosing a
//! backend, and a rewrite that redirects. The imported configuration, run,
//! answers as nginx would: the map's redirects (its strings compared
//! case-insensitively, its regex as written), each host to its backend in
//! nginx's precedence, the rewrite's redirect with the query kept (both
//! redirects absolute, as nginx makes a path), and the rest proxied.

use std::{path::Path, sync::atomic::Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{backend, client, proxy, send, test_dir};

const NGINX: &str = r#"
events {}
http {
    map $uri $moved_to {
        /help        /docs/;
        ~^/manual/   /docs/manual/;
    }
    map $host $tenant {
        hostnames;
        default            DEFAULT;
        .acme.example.com  ACME;
        ~^v\d+\.example\.com$ VERSIONED;
    }
    server {
        listen 127.0.0.1:0;
        if ($moved_to) {
            return 301 $moved_to;
        }
        location /legacy {
            rewrite ^/legacy$ /docs/ permanent;
        }
        location / {
            proxy_pass http://$tenant;
        }
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_maps_answer_as_nginx() {
    let dir = test_dir("import-maps");
    let (default, acme, versioned) = (backend(1).await, backend(2).await, backend(3).await);
    let text = NGINX
        .replace("DEFAULT", &default.addr.to_string())
        .replace("ACME", &acme.addr.to_string())
        .replace("VERSIONED", &versioned.addr.to_string());
    let imported = proxy_user::import::nginx_text(&text, Path::new("/site/nginx.conf")).unwrap();
    assert!(
        imported.complete(),
        "{:#?}\n{}",
        imported.reports,
        imported.toml
    );
    let p = proxy(&dir, &imported.toml).await;
    let c = client();
    let get = |host: &str, path: &str| {
        Request::builder()
            .uri(format!("http://{}{path}", p.addr()))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    // A redirect to a path is absolute, as nginx sends it: the request's
    // host (its port dropped) and the port it came in on, not the scheme's
    // default (nginx 1.22: `http://example.com:18931/docs/`).
    let origin = format!("http://example.com:{}", p.addr().port());
    // The redirect map: an exact key (case-insensitive, as nginx's map
    // strings), a regex key; other paths go on to the locations.
    for (path, to) in [
        ("/help", "/docs/"),
        ("/HELP", "/docs/"),
        ("/manual/intro", "/docs/manual/"),
    ] {
        let (status, h, _) = send(&c, get("example.com:9999", path)).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(h["location"], format!("{origin}{to}"), "{path}");
    }
    // The rewrite that redirects keeps the query; other paths of its
    // location get nginx's 404.
    let (status, h, _) = send(&c, get("example.com", "/legacy?a=1")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], format!("{origin}/docs/?a=1"));
    let (status, _, _) = send(&c, get("example.com", "/legacy/x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(default.hits.load(Ordering::Relaxed), 0);

    // The host map: `.acme.example.com` takes the name and its
    // subdomains, the regex its versions, the default the rest.
    for (host, want) in [
        ("acme.example.com", &acme),
        ("shop.ACME.example.com:8080", &acme),
        ("v2.example.com", &versioned),
        ("example.com", &default),
        ("vx.example.com", &default),
    ] {
        let before = want.hits.load(Ordering::Relaxed);
        let (status, _, _) = send(&c, get(host, "/app")).await;
        assert_eq!(status, StatusCode::OK, "{host}");
        assert_eq!(want.hits.load(Ordering::Relaxed), before + 1, "{host}");
    }
}
