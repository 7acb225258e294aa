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
    // A regex key is the copy's `if` on $host.
    assert!(
        reports(&i, Kind::Translated)
            .iter()
            .any(|l| l.contains(":6: translated: map:"))
    );
    let slash: Vec<_> = r
        .iter()
        .filter(|r| r["path"].as_str() == Some("/"))
        .map(|r| (r.get("if").cloned(), r["body"].as_str()))
        .collect();
    assert_eq!(slash.len(), 2);
    assert_eq!(
        slash[0]
            .0
            .as_ref()
            .and_then(|c| c.as_array())
            .map(|c| c.len()),
        Some(3)
    );
    assert_eq!((slash[0].1, slash[1].1), (Some("1"), Some("0")));
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

#[test]
fn two_host_maps_in_one_location_are_copied_together_and_accounted_truthfully() {
    // Two `$host` maps used by one location: each copy carries both
    // values; before, neither was written yet both maps said translated.
    let i = import(
        "http {\n map $host $be { default 127.0.0.1:9000; a.example.com 127.0.0.1:9001; }\n\
         map $host $site { default main; b.example.com bee; }\n\
         server { listen 80;\n location / { proxy_pass http://$be; proxy_set_header X-Site $site; }\n}\n}\n",
    );
    let r = routes(&i);
    let got: Vec<(Option<&str>, &str, &str)> = r
        .iter()
        .map(|r| {
            (
                r.get("host").and_then(|h| h.as_str()),
                r["upstream"].as_str().unwrap(),
                r["request_headers"]["set"]["X-Site"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (Some("a.example.com"), "127_0_0_1_9001", "main"),
            (Some("b.example.com"), "127_0_0_1_9000", "bee"),
            (None, "127_0_0_1_9000", "main"),
        ]
    );
    assert!(
        reports(&i, Kind::Unsupported).is_empty(),
        "{:#?}",
        i.reports
    );
    // A map a location cannot be copied for (one use inside an `if`)
    // is reported, and so is the use; the other map stays translated.
    let i = import(
        "http {\n map $host $be { default 127.0.0.1:9000; a.example.com 127.0.0.1:9001; }\n\
         map $host $site { default main; b.example.com bee; }\n\
         server { listen 80;\n location / { proxy_pass http://$be; }\n\
         location /x/ { proxy_pass http://$be; if ($site = bee) { return 403; } }\n}\n}\n",
    );
    let unsupported = reports(&i, Kind::Unsupported);
    assert!(
        unsupported
            .iter()
            .any(|l| l.contains(":3: unsupported: map:")),
        "{unsupported:#?}"
    );
    assert!(!unsupported.iter().any(|l| l.contains(":2: unsupported")));
    let translated = reports(&i, Kind::Translated);
    assert!(
        !translated.iter().any(|l| l.contains(":3:")),
        "{translated:#?}"
    );
    assert!(
        translated
            .iter()
            .any(|l| l.contains(":2: translated: map:"))
    );
}

#[test]
fn regex_wildcard_and_uri_maps_become_route_conditions() {
    let i = import(
        "http {\n map $host $be {\n hostnames;\n default 127.0.0.1:9000;\n\
         .example.com 127.0.0.1:9001;\n *.api.example.com 127.0.0.1:9002;\n\
         www.example.* 127.0.0.1:9003;\n ~^v\\d+\\.test$ 127.0.0.1:9004;\n a.example.com 127.0.0.1:9005;\n }\n\
         map $uri $moved { /old-page /new-page; ~^/blog/ https://blog.example.com/; }\n\
         server { listen 80;\n if ($moved) { return 301 $moved; }\n location / { proxy_pass http://$be; }\n}\n}\n",
    );
    assert!(
        reports(&i, Kind::Unsupported).is_empty(),
        "{:#?}",
        i.reports
    );
    let r = routes(&i);
    let cond = |r: &toml::Table| -> Vec<String> {
        r.get("if")
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // The redirect map's `if`, per key, before the locations.
    assert_eq!(cond(&r[0]), ["$uri", "~*", "^/old\\-page$"]);
    assert_eq!(r[0]["redirect"].as_str(), Some("$scheme://$host/new-page"));
    assert_eq!(r[0]["redirect_status"].as_integer(), Some(301));
    assert_eq!(cond(&r[1]), ["$uri", "~", "^/blog/"]);
    assert_eq!(r[1]["redirect"].as_str(), Some("https://blog.example.com/"));
    // The host map in nginx's precedence: exact, longest `*.` form,
    // `.*` form, regexes, then the default.
    let rest: Vec<(Option<&str>, Vec<String>, &str)> = r[2..]
        .iter()
        .map(|r| {
            (
                r.get("host").and_then(|h| h.as_str()),
                cond(r),
                r["upstream"].as_str().unwrap(),
            )
        })
        .collect();
    let re = |op: &str, v: &str| vec!["$host".to_string(), op.to_string(), v.to_string()];
    assert_eq!(
        rest,
        [
            (Some("a.example.com"), vec![], "127_0_0_1_9005"),
            (
                None,
                re("~", "^.+\\.api\\.example\\.com$"),
                "127_0_0_1_9002"
            ),
            (None, re("~", "^(.+\\.)?example\\.com$"), "127_0_0_1_9001"),
            (None, re("~", "^www\\.example\\..+$"), "127_0_0_1_9003"),
            (None, re("~", "^v\\d+\\.test$"), "127_0_0_1_9004"),
            (None, vec![], "127_0_0_1_9000"),
        ]
    );
    // Conditions rampart's config accepts.
    crate::config::Config::parse(&i.toml, std::path::Path::new("/site/rampart.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    // Without `hostnames`, a wildcard key is not one: reported.
    let i = import(
        "http {\n map $host $be { default 127.0.0.1:9000; *.example.com 127.0.0.1:9001; }\n\
         server { listen 80;\n location / { proxy_pass http://$be; }\n}\n}\n",
    );
    assert!(
        reports(&i, Kind::Unsupported)
            .iter()
            .any(|l| l.contains(":2: unsupported: map:"))
    );
}
