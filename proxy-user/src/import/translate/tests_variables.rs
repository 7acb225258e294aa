//! `set`, `map` and `if` (variables.rs, host_map.rs, conditions.rs):
//! what is written out, and what stays reported with its reason.

use super::tests::{import, reports, routes};
use crate::import::Kind;

#[test]
fn set_is_written_where_used_and_ambiguous_sets_are_reported() {
    let i = import(
        "server { listen 80;\n set $up 127.0.0.1:9000;\n set $to https://example.com;\n\
         location /a/ { proxy_pass http://$up; }\n\
         location /b/ { set $up 127.0.0.1:9001; proxy_pass http://$up; }\n\
         location /c/ { if ($request_method = POST) { return 301 $to$request_uri; } proxy_pass http://$up; }\n\
         location /d/ { set $x 1; set $x 2; return 200 $x; }\n}\n",
    );
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .filter(|r| r["path"].as_str() == Some(p))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(by("/a/")[0]["upstream"].as_str(), Some("127_0_0_1_9000"));
    // A location's own set hides the server's.
    assert_eq!(by("/b/")[0]["upstream"].as_str(), Some("127_0_0_1_9001"));
    // An `if` block sees the server's variables.
    assert_eq!(
        by("/c/")[0]["redirect"].as_str(),
        Some("https://example.com$request_uri")
    );
    let unsupported = reports(&i, Kind::Unsupported);
    assert_eq!(
        unsupported
            .iter()
            .filter(|l| l.contains(":7: unsupported: set: $x is set more than once in one block"))
            .count(),
        1,
        "{unsupported:#?}"
    );
    assert!(
        unsupported
            .iter()
            .any(|l| l.contains(":7: unsupported: return:"))
    );
}

#[test]
fn a_host_map_is_a_route_per_name_and_others_stay_reported() {
    let i = import(
        "http {\n map $host $be {\n default 127.0.0.1:9000;\n Shop.example.com 127.0.0.1:9001;\n }\n\
         map $host $re { ~^www 1; default 0; }\n\
         map $uri $new { /old /new; }\n\
         server { listen 80;\n location /app/ { proxy_pass http://$be; }\n\
         location / { return 200 $re; }\n\
         location /r/ { return 302 http://$be/r; }\n}\n}\n",
    );
    let r = routes(&i);
    let app: Vec<(Option<&str>, Option<&str>)> = r
        .iter()
        .filter(|r| r["path"].as_str() == Some("/app/"))
        .map(|r| {
            (
                r.get("host").and_then(|h| h.as_str()),
                r["upstream"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        app,
        [
            (Some("shop.example.com"), Some("127_0_0_1_9001")),
            (None, Some("127_0_0_1_9000")),
        ]
    );
    let unsupported = reports(&i, Kind::Unsupported);
    assert!(
        unsupported
            .iter()
            .any(|l| l.contains(":6: unsupported: map:"))
    );
    assert!(
        unsupported
            .iter()
            .any(|l| l.contains(":7: unsupported: map:"))
    );
    assert!(!unsupported.iter().any(|l| l.contains(":2: unsupported")));
    let r302: Vec<&str> = r
        .iter()
        .filter_map(|r| r.get("redirect").and_then(|v| v.as_str()))
        .collect();
    assert_eq!(r302, ["http://127.0.0.1:9001/r", "http://127.0.0.1:9000/r"]);
    assert!(
        !i.reports.iter().any(|r| r.directive.contains('\u{1}')),
        "{:#?}",
        i.reports
    );
    // One line per directive, however many copies of its location.
    let mut lines = i
        .reports
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    let n = lines.len();
    lines.dedup();
    assert_eq!(lines.len(), n);
}

#[test]
fn ifs_in_locations_come_before_their_location() {
    let i = import(
        "server { listen 80;\n location ~ ^/api/ {\n\
         if ($http_origin ~* ^https://(a|b)\\.example\\.com$) { add_header Vary Origin; return 204; }\n\
         if ($request_method = POST) { rewrite ^ /x last; }\n\
         proxy_pass http://127.0.0.1:9;\n }\n}\n",
    );
    let r = routes(&i);
    assert_eq!(r[0]["path_regex"].as_str(), Some("^/api/"));
    assert_eq!(r[0]["if"][1].as_str(), Some("~*"));
    assert_eq!(r[0]["respond"].as_integer(), Some(204));
    assert_eq!(r[1]["upstream"].as_str(), Some("127_0_0_1_9"));
    let unsupported = reports(&i, Kind::Unsupported);
    assert_eq!(unsupported.len(), 1, "{unsupported:#?}");
    assert!(
        unsupported[0].contains(":4: unsupported: if: an `if` block rampart can write holds"),
        "{unsupported:#?}"
    );
}
