//! nginx's semantics, kept: match order, inheritance, defaults written out,
//! and every directive accounted for.

use std::path::Path;

use super::tests_keys::parses;
use crate::import::{self, Import, Kind};

pub(super) fn import(text: &str) -> Import {
    import::nginx_text(text, Path::new("/site/nginx.conf")).unwrap()
}

pub(super) fn routes(i: &Import) -> Vec<toml::Table> {
    let v: toml::Table = toml::from_str(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    v["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_table().unwrap().clone())
        .collect()
}

fn matcher(r: &toml::Table) -> String {
    for k in ["path_exact", "path", "path_regex"] {
        if let Some(v) = r.get(k) {
            return format!("{k} {}", v.as_str().unwrap());
        }
    }
    "any".into()
}

pub(super) fn reports(i: &Import, kind: Kind) -> Vec<String> {
    i.reports
        .iter()
        .filter(|r| r.kind == kind)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn locations_in_nginx_match_order() {
    let i = import(
        "server {\n listen 80;\n root /srv;\n\
         location / { }\n\
         location /a/ { }\n\
         location ~ \\.php$ { return 403; }\n\
         location ^~ /a/static/ { }\n\
         location = /a { }\n\
         location ~* \\.JPG$ { }\n\
         location /a/long/prefix/ { }\n\
         location ^~ /b/ { }\n}\n",
    );
    let order: Vec<String> = routes(&i).iter().map(matcher).collect();
    assert_eq!(
        order,
        [
            "path_exact /a",
            "path /a/static/",
            "path /b/",
            "path_regex \\.php$",
            "path_regex (?i)\\.JPG$",
            "path /a/long/prefix/",
            "path /a/",
            "path /",
        ]
    );
}

#[test]
fn nested_locations_inherit_and_come_first() {
    let i = import(
        "server {\n root /srv;\n location /app/ {\n  expires 1h;\n  location ~ \\.css$ { }\n }\n}\n",
    );
    let r = routes(&i);
    assert_eq!(matcher(&r[0]), "path_regex \\.css$");
    assert_eq!(r[0]["expires"].as_str(), Some("1h"), "inherited from /app/");
    assert_eq!(r[1]["root"].as_str(), Some("/srv"));
}

#[test]
fn proxy_pass_uri_part() {
    let i = import(
        "server {\n location /api/ { proxy_pass http://127.0.0.1:8000/api/; }\n\
         location /v1/ { proxy_pass http://127.0.0.1:8000/; }\n\
         location = /x { proxy_pass http://127.0.0.1:8000/y; }\n}\n",
    );
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r.get("path").and_then(|v| v.as_str()) == Some(p))
            .unwrap()
            .clone()
    };
    assert_eq!(by("/api/")["upstream"].as_str(), Some("127_0_0_1_8000"));
    assert!(
        by("/api/").get("upstream_path").is_none(),
        "the same URI part"
    );
    assert_eq!(by("/v1/")["upstream_path"].as_str(), Some("/"));
    let un = reports(&i, Kind::Unsupported);
    assert_eq!(un.len(), 1, "{un:?}");
    assert!(
        un[0].starts_with(
            "/site/nginx.conf:4: unsupported: proxy_pass: proxy_pass with a URI part (`/y`) in a `=` or regex location"
        ),
        "{un:?}"
    );
    parses(&i);
}

#[test]
fn nginx_defaults_written_out() {
    let i = import(
        "http {\n limit_req_zone $binary_remote_addr zone=z:1m rate=10r/s;\n\
         upstream app { server 10.0.0.1:80 weight=2; server 10.0.0.2; server 10.0.0.3 backup; }\n\
         server {\n  location / { limit_req zone=z burst=5; proxy_pass http://app; }\n }\n}\n",
    );
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let up = v["upstream"]["app"].as_table().unwrap();
    assert_eq!(up["balance"].as_str(), Some("round_robin"));
    assert_eq!(up["keepalive"].as_integer(), Some(0));
    assert_eq!(up["connect_timeout"].as_str(), Some("60s"));
    let servers = up["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "the backup is kept");
    assert_eq!(servers[2]["addr"].as_str(), Some("10.0.0.3:80"));
    assert_eq!(servers[2]["backup"].as_bool(), Some(true));
    let z = v["limit"]["z"].as_table().unwrap();
    assert_eq!(
        z["status"].as_integer(),
        Some(503),
        "nginx's limit_req_status"
    );
    assert_eq!(z["burst"].as_integer(), Some(5));
    assert!(z.get("nodelay").is_none());
    assert_eq!(v["http"]["header_timeout"].as_str(), Some("60s"));
    let un = reports(&i, Kind::Unsupported);
    assert!(un.is_empty(), "{un:?}");
}

#[test]
fn return_answers_before_access_and_limits() {
    let i = import(
        "http {\n limit_req_zone $binary_remote_addr zone=z:1m rate=1r/s;\n server {\n\
         location ~ \\.env$ { deny all; limit_req zone=z; return 404; }\n }\n}\n",
    );
    let r = routes(&i);
    assert_eq!(r[0]["respond"].as_integer(), Some(404));
    assert!(r[0].get("limit").is_none());
    assert!(i.complete(), "{:?}", i.reports);
    let nn = reports(&i, Kind::NotNeeded);
    assert!(
        nn.iter()
            .any(|l| l.contains(":4: not needed: deny: never applied")),
        "{nn:?}"
    );
}

#[test]
fn https_redirect_server_and_listeners() {
    let i = import(
        "server { listen 80; server_name a.test; return 301 https://$host:8443$request_uri; }\n\
         server { listen 8443 ssl; server_name a.test; ssl_certificate c; ssl_certificate_key k;\n\
         ssl_protocols TLSv1.2 TLSv1.3; location / { return 200 ok; } }\n",
    );
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let l = v["listener"].as_array().unwrap();
    assert_eq!(l[0]["bind"].as_str(), Some("0.0.0.0:80"));
    assert_eq!(l[0]["redirect_https"].as_bool(), Some(true));
    assert_eq!(l[0]["redirect_https_port"].as_integer(), Some(8443));
    assert_eq!(
        l[1]["http2"].as_bool(),
        Some(false),
        "no http2 on the nginx listen"
    );
    assert!(l[1]["tls"].get("cert").is_some());
    assert!(i.complete(), "{:?}", i.reports);
}

#[test]
fn every_directive_is_accounted_for() {
    let i = import(
        "worker_processes auto;\nevents { worker_connections 10; }\nhttp {\n sendfile on;\n\
         frobnicate 3;\n gzip_static on;\n server { location / { return 204; } }\n}\n",
    );
    let lines: Vec<String> = i.reports.iter().map(ToString::to_string).collect();
    for want in [
        "/site/nginx.conf:1: not needed: worker_processes",
        "/site/nginx.conf:2: not needed: worker_connections",
        "/site/nginx.conf:4: not needed: sendfile",
        "/site/nginx.conf:5: unsupported: frobnicate: unknown directive",
        "/site/nginx.conf:6: not needed: gzip_static",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want} missing from {lines:#?}"
        );
    }
}

#[test]
fn a_shared_address_is_not_turned_into_a_redirect() {
    let i = import(
        "server { listen 80; server_name a.test; return 301 https://$host$request_uri; }\n\
         server { listen 80; server_name b.test; location / { return 200 b; } }\n\
         server { listen 80; location / { return 200 other; } }\n",
    );
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let l = v["listener"].as_array().unwrap();
    assert_eq!(l.len(), 1);
    assert!(
        l[0].get("redirect_https").is_none(),
        "b.test would be redirected too"
    );
    assert!(i.complete(), "{:#?}", i.reports);
    // Each server is a `[[server]]` on the shared listener, the redirect
    // one's route redirecting; the first on the address is the default,
    // as in nginx, and the nameless one is reached as nginx reaches it.
    let s = v["server"].as_array().unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(strs(&s[0]["server_name"]), ["a.test"]);
    assert_eq!(
        s[0]["route"][0]["redirect"].as_str(),
        Some("https://$host$request_uri")
    );
    assert_eq!(s[0]["route"][0]["redirect_status"].as_integer(), Some(301));
    assert_eq!(strs(&s[1]["server_name"]), ["b.test"]);
    assert_eq!(strs(&s[1]["listen"]), ["0.0.0.0:80"]);
    assert_eq!(s[1]["route"][0]["respond"].as_integer(), Some(200));
    assert_eq!(s[2]["server_name"].as_array().unwrap().len(), 0);
    assert_eq!(s[2]["route"][0]["body"].as_str(), Some("other"));
    assert!(v.get("route").is_none(), "{}", i.toml);
}

/// A TOML array of strings.
fn strs(v: &toml::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn several_servers_become_server_blocks_with_nginx_defaults() {
    let i = import(
        "server { listen 80; listen 8080 default_server; server_name a.test *.a.test; location / { return 200 a; } }\n\
         server { listen 8080; server_name ~^api\\d+\\.test$ a.test; location /x/ { return 200 b; } }\n\
         server { listen 443 ssl default_server; server_name c.test; ssl_certificate c.crt; ssl_certificate_key c.key; location / { return 200 c; } }\n",
    );
    let v: toml::Table = toml::from_str(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    let s = v["server"].as_array().unwrap();
    let names = |n: usize| strs(&s[n]["server_name"]);
    assert_eq!(names(0), ["a.test", "*.a.test"]);
    // a.test is the first server's on 8080: nginx ignores it in the second.
    assert_eq!(names(1), ["~^api\\d+\\.test$"]);
    assert_eq!(strs(&s[0]["listen"]), ["0.0.0.0:80", "0.0.0.0:8080"]);
    // Default on 8080 and, being alone there, on 80: on all its listeners.
    assert_eq!(s[0]["default_server"].as_bool(), Some(true));
    assert_eq!(s[2]["default_server"].as_bool(), Some(true));
    assert!(s[1].get("default_server").is_none());
    assert_eq!(s[1]["route"][0]["path"].as_str(), Some("/x/"));
    let lines: Vec<String> = i.reports.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l.starts_with("/site/nginx.conf:2: not needed: server_name: `a.test` is an earlier server's name on 0.0.0.0:8080")),
        "{lines:#?}"
    );
    // What it wrote is a configuration rampart accepts (but for the
    // certificate files, which do not exist here).
    let without_tls = i
        .toml
        .replace("tls = { cert = \"c.crt\", key = \"c.key\" }", "");
    let cfg = crate::config::Config::parse(&without_tls, std::path::Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{without_tls}"));
    assert_eq!(cfg.servers.list.len(), 3);
    // nginx's default of each address: 80 and 8080 -> a.test's, 443 -> c.test's.
    for (l, want) in cfg.listeners.iter().zip([0, 0, 2]) {
        assert_eq!(
            cfg.servers.select(l.id, Some("unknown.test")),
            Some(want),
            "{}",
            l.bind
        );
    }
}

#[test]
fn control_characters_never_reach_a_toml_comment() {
    // A quoted argument may hold a newline or DEL; the route's comment
    // names the location, and TOML forbids both in comments.
    let i = import("server {\n location \"/a\nb\u{7f}\" { return 204; }\n}\n");
    let v: toml::Table = toml::from_str(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(v["route"][0]["path"].as_str(), Some("/a\nb\u{7f}"));
    assert!(i.toml.contains("# location /a\\nb\\u{7f}"), "{}", i.toml);
}

#[test]
fn reports_are_one_line_each() {
    let i = import("'' 1;\n\"a\nb\" 2;\nserver { }\n");
    let lines: Vec<String> = i.reports.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines[0],
        "/site/nginx.conf:1: unsupported: \"\": unknown directive"
    );
    assert_eq!(
        lines[1],
        "/site/nginx.conf:2: unsupported: a\\nb: unknown directive"
    );
}
