//! The keys that came with rampart's headers, access, compression, error
//! page, rewrite and variable support: what the importer writes for them.

use std::path::Path;

use super::tests::{import, reports, routes};
use crate::import::{Import, Kind};

/// The translation passes rampart's validation (files it names aside).
pub(super) fn parses(i: &Import) {
    crate::config::Config::parse(&i.toml, Path::new("/nonexistent/rampart.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
}

#[test]
fn return_with_variables() {
    let i = import(
        "server {\n server_name a.test;\n\
         location /old { return 301 $scheme://$server_name/new$is_args$args; }\n\
         location /u { return 302 https://$host$uri; }\n\
         location /ip { return 200 \"ip $remote_addr\"; }\n\
         location /c { return 301 /x/$cookie_x?h=$http_x_tag&p=$arg_p; }\n\
         location /up { return 200 $upstream_addr; }\n}\n",
    );
    let r = routes(&i);
    let by = |p: &str| r.iter().find(|r| r["path"].as_str() == Some(p)).cloned();
    let old = by("/old").unwrap();
    assert_eq!(
        old["redirect"].as_str(),
        Some("$scheme://a.test/new$is_args$args")
    );
    assert_eq!(old["redirect_status"].as_integer(), Some(301));
    assert_eq!(
        by("/u").unwrap()["redirect"].as_str(),
        Some("https://$host$uri")
    );
    assert_eq!(by("/ip").unwrap()["body"].as_str(), Some("ip $remote_addr"));
    assert_eq!(
        by("/c").unwrap()["redirect"].as_str(),
        Some("$scheme://$host/x/$cookie_x?h=$http_x_tag&p=$arg_p")
    );
    assert!(by("/up").is_none());
    let un = reports(&i, Kind::Unsupported);
    assert_eq!(un.len(), 1, "{un:#?}");
    assert!(
        un[0].starts_with(
            "/site/nginx.conf:7: unsupported: return: in a response body, `$upstream_addr`"
        ),
        "{un:#?}"
    );
    parses(&i);
    // $server_name is the first name, as nginx takes it; a wildcard is not.
    let i = import(
        "server { server_name a.test b.test; location / { return 301 https://$server_name/; } }\n",
    );
    assert!(i.complete(), "{:?}", i.reports);
    assert_eq!(routes(&i)[0]["redirect"].as_str(), Some("https://a.test/"));
    let i = import(
        "server { server_name *.a.test; location / { return 301 https://$server_name/; } }\n",
    );
    assert!(!i.complete());
}

#[test]
fn redirect_server_to_its_one_name() {
    let i = import(
        "server { listen 80; server_name api.test; return 301 https://$server_name$request_uri; }\n\
         server { listen 443 ssl; server_name api.test; ssl_certificate c; ssl_certificate_key k;\n\
         location / { return 200 ok; } }\n",
    );
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    assert_eq!(v["listener"][0]["redirect_https"].as_bool(), Some(true));
    assert_eq!(
        v["listener"][0]["redirect_https_host"].as_str(),
        Some("api.test")
    );
    assert!(i.complete(), "{:?}", i.reports);
    // Two names: nginx's $server_name is the first; a literal host is
    // written as is; $host keeps the client's.
    for (server_names, url, want) in [
        (
            "a.test b.test",
            "https://$server_name$request_uri",
            Some("a.test"),
        ),
        (
            "a.test",
            "https://www.a.test:8443$request_uri",
            Some("www.a.test"),
        ),
        ("a.test", "https://$host$request_uri", None),
    ] {
        let i = import(&format!(
            "server {{ listen 80; server_name {server_names}; return 301 {url}; }}\n\
             server {{ listen 443 ssl; server_name a.test; ssl_certificate c; ssl_certificate_key k;\n\
             location / {{ return 200 ok; }} }}\n"
        ));
        let v: toml::Table = toml::from_str(&i.toml).unwrap();
        assert_eq!(
            v["listener"][0]["redirect_https"].as_bool(),
            Some(true),
            "{url}"
        );
        assert_eq!(
            v["listener"][0]
                .get("redirect_https_host")
                .and_then(|h| h.as_str()),
            want,
            "{url}"
        );
        assert!(i.complete(), "{url}: {:?}", i.reports);
    }
    // A wildcard first name is not a host.
    let i = import(
        "server { listen 80; server_name *.a.test; return 301 https://$server_name$request_uri; }\n",
    );
    assert!(!i.complete());
}

#[test]
fn headers_inherit_as_nginx_arrays() {
    let i = import(
        "http {\n add_header X-Frame-Options SAMEORIGIN always;\n server {\n\
         add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;\n\
         location /api/ {\n proxy_pass http://127.0.0.1:9;\n proxy_set_header Host $host;\n\
         proxy_set_header X-Id $request_id;\n proxy_set_header X-Debug \"\";\n\
         proxy_hide_header X-Powered-By;\n }\n\
         location /own/ { add_header X-Own \"v $uri\"; add_header Cache-Control no-store; proxy_pass http://127.0.0.1:9; }\n\
         location /cookie/ { add_header X-C $cookie_c; proxy_pass http://127.0.0.1:9; }\n }\n}\n",
    );
    parses(&i);
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r["path"].as_str() == Some(p))
            .unwrap()
            .clone()
    };
    let api = by("/api/");
    // The server's add_header hides http's (nginx's inheritance).
    assert_eq!(
        api["hsts"].as_str(),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(api.get("response_headers").unwrap().get("add").is_none());
    let req = api["request_headers"].as_table().unwrap();
    assert_eq!(req["set"]["X-Id"].as_str(), Some("$request_id"));
    assert!(req["set"].get("Host").is_none(), "built in");
    assert_eq!(req["remove"][0].as_str(), Some("X-Debug"));
    assert_eq!(
        api["response_headers"]["remove"][0].as_str(),
        Some("X-Powered-By")
    );
    let own = by("/own/");
    assert!(own.get("hsts").is_none());
    let add = own["response_headers"]["add"].as_table().unwrap();
    assert_eq!(add["X-Own"].as_str(), Some("v $uri"));
    assert_eq!(add["Cache-Control"].as_str(), Some("no-store"));
    assert!(own["response_headers"].get("always").is_none());
    let un = reports(&i, Kind::Unsupported);
    // http's X-Frame-Options is hidden everywhere.
    assert_eq!(un.len(), 1, "{un:#?}");
    assert!(
        un.iter()
            .any(|l| l.starts_with("/site/nginx.conf:2: unsupported: add_header")),
        "{un:#?}"
    );
    assert_eq!(
        by("/cookie/")["response_headers"]["add"]["X-C"].as_str(),
        Some("$cookie_c")
    );
}

#[test]
fn access_basic_auth_and_real_ip() {
    let i = import(
        "http {\n set_real_ip_from 10.1.2.3/8;\n set_real_ip_from 192.168.0.1;\n server {\n root /srv;\n\
         location /admin/ { allow 10.1.2.3/8; allow ::1; deny all; proxy_pass http://127.0.0.1:9; }\n\
         location /private/ { auth_basic \"Team\"; auth_basic_user_file conf/htpasswd; }\n\
         location ~ /\\.ht { deny all; }\n }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let http = v["http"].as_table().unwrap();
    assert_eq!(
        http["trusted_proxies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["10.0.0.0/8", "192.168.0.1"]
    );
    // nginx's defaults, where rampart's differ.
    assert_eq!(http["real_ip_header"].as_str(), Some("X-Real-IP"));
    assert_eq!(http["real_ip_recursive"].as_bool(), Some(false));
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r.get("path").and_then(|v| v.as_str()) == Some(p))
            .unwrap()
            .clone()
    };
    assert_eq!(
        by("/admin/")["access"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["allow 10.0.0.0/8", "allow ::1", "deny all"]
    );
    let private = by("/private/");
    assert_eq!(private["auth_basic"].as_str(), Some("Team"));
    assert_eq!(
        private["auth_basic_user_file"].as_str(),
        Some("/site/conf/htpasswd")
    );
    assert_eq!(private["root"].as_str(), Some("/srv"));
    let ht = r.iter().find(|r| r.get("path_regex").is_some()).unwrap();
    assert_eq!(ht["access"][0].as_str(), Some("deny all"));
}

#[test]
fn gzip_and_error_pages_are_whole_site_sections() {
    let i = import(
        "http {\n gzip on;\n gzip_types application/json image/png;\n gzip_min_length 1000;\n\
         gzip_comp_level 5;\n gzip_vary on;\n server {\n\
         error_page 500 502 503 504 /50x.html;\n  proxy_intercept_errors on;\n\
         location = /50x.html { root /usr/share/nginx/html; }\n\
         location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let c = v["compress"].as_table().unwrap();
    assert_eq!(
        c["encodings"].as_array().unwrap().len(),
        1,
        "gzip only, as nginx"
    );
    assert_eq!(
        c["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect::<Vec<_>>(),
        ["text/html", "application/json"]
    );
    assert_eq!(c["min_length"].as_str(), Some("1000"));
    assert_eq!(c["gzip_level"].as_integer(), Some(5));
    let p = v["error_page"][0].as_table().unwrap();
    assert_eq!(p["status"].as_array().unwrap().len(), 4);
    assert_eq!(p["file"].as_str(), Some("/usr/share/nginx/html/50x.html"));
    assert_eq!(p["intercept"].as_bool(), Some(true));
    let nn = reports(&i, Kind::NotNeeded);
    assert!(
        nn.iter()
            .any(|l| l.contains("`image/png` is compressed already")),
        "{nn:#?}"
    );
    // nginx's defaults, where rampart's differ: 20 bytes, text/html only.
    let i = import("http {\n gzip on;\n server { location / { return 204; } }\n}\n");
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    assert_eq!(v["compress"]["min_length"].as_str(), Some("20"));
    assert_eq!(v["compress"]["types"][0].as_str(), Some("text/html"));
    parses(&i);
}

#[test]
fn closed_rather_than_open() {
    let i = import(
        "server {\n location /a/ { allow unix:; allow 10.0.0.0/8; deny all; proxy_pass http://127.0.0.1:9; }\n\
         location /b/ { auth_basic \"x\"; proxy_pass http://127.0.0.1:9; }\n}\n",
    );
    parses(&i);
    for r in routes(&i) {
        assert_eq!(r["access"].as_array().unwrap().len(), 1, "{r:?}");
        assert_eq!(r["access"][0].as_str(), Some("deny all"));
        assert!(r.get("upstream").is_some(), "a valid route: {r:?}");
    }
    let un = reports(&i, Kind::Unsupported);
    assert_eq!(un.len(), 4, "every rule and the auth_basic: {un:#?}");
    assert!(!i.complete());
}

#[test]
fn custom_log_formats_are_templates() {
    let i = import(
        "http {\n log_format gw '$remote_addr \"$request\" '\n  '$status $upstream_response_time';\n\
         log_format main '$remote_addr $http_x_forwarded_for';\n\
         access_log /var/log/gw.log gw;\n server { location / { return 204; } }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    assert_eq!(
        v["http"]["access_log_format"].as_str(),
        Some("$remote_addr \"$request\" $status $upstream_response_time")
    );
    assert_eq!(v["http"]["access_log"].as_str(), Some("/var/log/gw.log"));
    let nn = reports(&i, Kind::NotNeeded);
    assert!(
        nn.iter()
            .any(|l| l.starts_with("/site/nginx.conf:4: not needed: log_format")),
        "{nn:#?}"
    );
    // Request headers, cookies and arguments are kept as nginx names them.
    let i = import(
        "http {\n log_format main '$remote_addr $http_x_forwarded_for $cookie_sid $arg_q';\n\
         access_log /var/log/a.log main;\n server { location / { return 204; } }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    assert_eq!(
        v["http"]["access_log_format"].as_str(),
        Some("$remote_addr $http_x_forwarded_for $cookie_sid $arg_q")
    );
    // A variable rampart's access log lacks: reported, with the format.
    let i = import(
        "http {\n log_format main '$remote_addr $upstream_status';\n\
         access_log /var/log/a.log main;\n server { location / { return 204; } }\n}\n",
    );
    let un = reports(&i, Kind::Unsupported);
    assert_eq!(un.len(), 2, "{un:#?}");
    assert!(un[0].contains("$upstream_status"), "{un:#?}");
}

#[test]
fn rewrites_and_named_upstreams() {
    let i = import(
        "http {\n upstream app { server app:8000 resolve; server unix:/run/app.sock; server backend; }\n\
         server {\n root /srv;\n\
         location /p/ { rewrite ^/p/(\\d+)$ /post?id=$1 break; proxy_pass http://app; }\n\
         location /s/ { rewrite ^/s/(.*)$ /static/$1 last; }\n\
         location /u/ { proxy_pass http://unix:/run/u.sock:/; }\n\
         location /n/ { proxy_pass http://api.internal:9000; }\n }\n}\n",
    );
    parses(&i);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let servers: Vec<&str> = v["upstream"]["app"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(servers, ["app:8000", "unix:/run/app.sock", "backend:80"]);
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r.get("path").and_then(|v| v.as_str()) == Some(p))
            .unwrap()
            .clone()
    };
    let p = by("/p/");
    assert_eq!(p["rewrite"][0].as_str(), Some("^/p/(\\d+)$"));
    assert_eq!(p["rewrite"][1].as_str(), Some("/post?id=$1"));
    assert_eq!(by("/s/")["rewrite"][1].as_str(), Some("/static/$1"));
    assert_eq!(by("/s/")["root"].as_str(), Some("/srv"));
    let u = by("/u/");
    assert_eq!(u["upstream_path"].as_str(), Some("/"));
    assert_eq!(
        v["upstream"][u["upstream"].as_str().unwrap()]["servers"][0].as_str(),
        Some("unix:/run/u.sock")
    );
    let n = by("/n/");
    assert_eq!(
        v["upstream"][n["upstream"].as_str().unwrap()]["servers"][0].as_str(),
        Some("api.internal:9000")
    );
    // `last` searches the locations again, in nginx as in rampart.
    assert_eq!(p["rewrite"].as_array().unwrap().len(), 2, "break");
    assert_eq!(by("/s/")["rewrite"][2].as_str(), Some("last"));
    assert!(i.complete(), "{:#?}", i.reports);
    // A location with only a `rewrite ... last`: 404 where it does not
    // match, as nginx's default root would answer.
    let i = import(
        "server { location /old/ { rewrite ^/old/(.*)$ /new/$1; }\n\
         location /new/ { proxy_pass http://127.0.0.1:9; } }\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    parses(&i);
    let old = routes(&i)
        .into_iter()
        .find(|r| r["path"].as_str() == Some("/old/"))
        .unwrap();
    assert_eq!(old["respond"].as_integer(), Some(404));
    assert_eq!(old["rewrite"][2].as_str(), Some("last"));
}
