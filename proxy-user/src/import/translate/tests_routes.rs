//! Location-level `gzip` and `error_page` as the route's own `compress`
//! and `error_page`.

use super::{
    tests::{import, reports, routes},
    tests_keys::parses,
};
use crate::import::Kind;

#[test]
fn location_gzip_and_error_pages_are_the_routes_own() {
    let i = import(
        "http {\n gzip on;\n gzip_types application/json;\n server {\n root /tmp;\n location /static/ { }\n\
         error_page 502 /50x.html;\n\
         location /dl/ { gzip off; proxy_pass http://127.0.0.1:9; }\n\
         location /api/ { gzip_comp_level 9; gzip_vary on; proxy_pass http://127.0.0.1:9; }\n\
         location /app/ { error_page 404 /404.html; error_page 502 503 /app-down.html;\n\
           proxy_intercept_errors on; proxy_pass http://127.0.0.1:9; }\n\
         location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    parses_but_for_files(&i);
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r["path"].as_str() == Some(p))
            .unwrap()
            .clone()
    };
    assert_eq!(by("/dl/")["compress"].as_bool(), Some(false));
    let api = by("/api/")["compress"].as_table().unwrap().clone();
    assert_eq!(api["gzip_level"].as_integer(), Some(9));
    assert_eq!(
        api["types"][1].as_str(),
        Some("application/json"),
        "inherited"
    );
    assert!(by("/").get("compress").is_none(), "as [compress]");
    let pages = by("/app/")["error_page"].as_array().unwrap().clone();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["status"][0].as_integer(), Some(404));
    assert_eq!(pages[0]["file"].as_str(), Some("/tmp/404.html"));
    assert_eq!(pages[1]["intercept"].as_bool(), Some(true));
    assert!(by("/").get("error_page").is_none(), "the site's");
    // Without a site [compress], a location's `gzip on` is the route's.
    let i = import(
        "server { location /js/ { gzip on; proxy_pass http://127.0.0.1:9; }\n\
         location / { gzip off; proxy_pass http://127.0.0.1:9; } }\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let r = routes(&i);
    assert!(r[0]["compress"].as_table().is_some(), "{r:?}");
    assert!(r[1].get("compress").is_none(), "off is already off");
    // A page rampart cannot write is reported.
    let i = import(
        "server { location / { error_page 404 @fallback; proxy_pass http://127.0.0.1:9; } }\n",
    );
    let un = reports(&i, Kind::Unsupported);
    assert!(
        un.iter().any(|l| l.contains("error_page: only a page")),
        "{un:#?}"
    );
}

/// As [`parses`], with the page files the translation names made first.
fn parses_but_for_files(i: &crate::import::Import) {
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let mut toml = i.toml.clone();
    let dir = std::env::temp_dir().join(format!("rampart-imp-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for r in v["route"].as_array().unwrap() {
        for p in r
            .get("error_page")
            .and_then(|p| p.as_array())
            .into_iter()
            .flatten()
        {
            let f = p["file"].as_str().unwrap();
            let local = dir.join(f.trim_start_matches('/').replace('/', "_"));
            std::fs::write(&local, "page").unwrap();
            toml = toml.replace(&format!("\"{f}\""), &format!("\"{}\"", local.display()));
        }
    }
    if let Some(pages) = v.get("error_page").and_then(|p| p.as_array()) {
        for p in pages {
            let f = p["file"].as_str().unwrap();
            let local = dir.join(f.trim_start_matches('/').replace('/', "_"));
            std::fs::write(&local, "page").unwrap();
            toml = toml.replace(&format!("\"{f}\""), &format!("\"{}\"", local.display()));
        }
    }
    parses(&crate::import::Import {
        toml,
        reports: Vec::new(),
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A redirect-only server on an address a content server shares is a
/// `[[server]]` whose route redirects as nginx's `return` does (its host,
/// `$server_name`, status); alone on its address it stays the listener's
/// `redirect_https`; certbot's `if ($host = ...)` form is still reported.
#[test]
fn redirect_server_beside_content_is_a_server() {
    let i = import(
        "server { listen 80; server_name old.test; return 301 https://new.test$request_uri; }\n\
         server { listen 80; server_name new.test; location / { return 200 new; } }\n\
         server { listen 80; server_name a.test b.test; return 307 https://$server_name$request_uri; }\n\
         server { listen 8080; server_name c.test; return 301 https://$host$request_uri; }\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    parses(&i);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let l = v["listener"].as_array().unwrap();
    assert_eq!(l[0]["bind"].as_str(), Some("0.0.0.0:80"));
    assert!(l[0].get("redirect_https").is_none(), "{}", i.toml);
    assert_eq!(
        l[1]["redirect_https"].as_bool(),
        Some(true),
        "alone on 8080"
    );
    let s = v["server"].as_array().unwrap();
    assert_eq!(s.len(), 3, "{}", i.toml);
    assert_eq!(s[0]["server_name"][0].as_str(), Some("old.test"));
    let old = &s[0]["route"][0];
    assert_eq!(
        old["redirect"].as_str(),
        Some("https://new.test$request_uri")
    );
    assert_eq!(old["redirect_status"].as_integer(), Some(301));
    assert!(old.get("path").is_none(), "every path redirects");
    let ab = &s[2]["route"][0];
    assert_eq!(ab["redirect"].as_str(), Some("https://a.test$request_uri"));
    assert_eq!(ab["redirect_status"].as_integer(), Some(307));

    // certbot's `if ($host = ...)` form: a route per host, then its 404.
    let certbot = import(
        "server { listen 80; server_name new.test; location / { return 200 new; } }\n\
         server { if ($host = www.old.test) { return 301 https://$host$request_uri; }\n\
         if ($host = old.test) { return 301 https://$host$request_uri; }\n\
         listen 80; server_name old.test www.old.test; return 404; }\n",
    );
    assert!(certbot.complete(), "{:#?}", certbot.reports);
    parses(&certbot);
    let v: toml::Table = toml::from_str(&certbot.toml).unwrap();
    assert!(v["listener"][0].get("redirect_https").is_none());
    let old = v["server"][1]["route"].as_array().unwrap();
    let shape: Vec<(Option<&str>, Option<&str>, Option<i64>)> = old
        .iter()
        .map(|r| {
            (
                r.get("host").and_then(|h| h.as_str()),
                r.get("redirect").and_then(|h| h.as_str()),
                r.get("respond").and_then(toml::Value::as_integer),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (
                Some("www.old.test"),
                Some("https://$host$request_uri"),
                None
            ),
            (Some("old.test"), Some("https://$host$request_uri"), None),
            (None, None, Some(404)),
        ]
    );
    // Other conditions rampart can test are the route's `if`, before the
    // server's `return`; file tests stay reported.
    let other = import(
        "server { listen 80; server_name a.test; location / { return 200 a; } }\n\
         server { if ($request_method = POST) { return 405; }\n\
         listen 80; server_name b.test; return 404; }\n",
    );
    assert!(other.complete(), "{:#?}", other.reports);
    let v: toml::Table = toml::from_str(&other.toml).unwrap();
    let b = v["server"][1]["route"].as_array().unwrap();
    assert_eq!(b[0]["if"].as_array().unwrap().len(), 3);
    assert_eq!(b[0]["respond"].as_integer(), Some(405));
    assert_eq!(b[1]["respond"].as_integer(), Some(404));
    let file_test = import(
        "server { listen 80; server_name a.test; location / { return 200 a; } }\n\
         server { if (!-f $request_filename) { return 405; }\n\
         listen 80; server_name b.test; return 404; }\n",
    );
    assert!(
        reports(&file_test, Kind::Unsupported)
            .iter()
            .any(|l| l.contains(":2: unsupported: if: condition: file test"))
    );
}

/// Servers whose gzip settings differ: the first server's are
/// `[compress]`, another's are its routes' own `compress`, and a server
/// that does not compress (nginx's default) has `compress = false`.
#[test]
fn servers_that_compress_differently_have_their_routes_own() {
    let i = import(
        "http {\n gzip_types application/json;\n\
         server { listen 80; server_name a.test; gzip on; gzip_comp_level 5; location / { return 200 a; } }\n\
         server { listen 80; server_name b.test; gzip on; gzip_comp_level 9;\n\
           location / { return 200 b; } location /raw/ { gzip off; return 200 r; } }\n\
         server { listen 80; server_name c.test; location / { return 200 c; } }\n\
         server { listen 80; server_name d.test; return 200 d; }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    parses(&i);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    assert_eq!(v["compress"]["gzip_level"].as_integer(), Some(5));
    let s = v["server"].as_array().unwrap();
    assert!(s[0]["route"][0].get("compress").is_none(), "as [compress]");
    let b = s[1]["route"].as_array().unwrap();
    let by = |p: &str| b.iter().find(|r| r["path"].as_str() == Some(p)).unwrap();
    let own = by("/")["compress"].as_table().unwrap();
    assert_eq!(own["gzip_level"].as_integer(), Some(9));
    assert_eq!(own["types"][1].as_str(), Some("application/json"));
    assert_eq!(by("/raw/")["compress"].as_bool(), Some(false));
    assert_eq!(
        s[3]["route"][0]["compress"].as_bool(),
        Some(false),
        "a server's return too"
    );
    assert_eq!(
        s[2]["route"][0]["compress"].as_bool(),
        Some(false),
        "gzip off by default"
    );
}

#[test]
fn try_files_fallbacks_in_the_same_route_or_a_proxying_named_location() {
    let i = import(
        "server {\n root /srv;\n location / { try_files $uri $uri/ /index.html; }\n\
         location /m/ { try_files $uri @app; }\n\
         location @app { proxy_pass http://127.0.0.1:9; proxy_set_header Host $host; }\n\
         location /e/ { try_files $uri =403; }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let r = routes(&i);
    let by = |p: &str| {
        r.iter()
            .find(|r| r["path"].as_str() == Some(p))
            .unwrap()
            .clone()
    };
    let list = |p: &str| by(p)["try_files"].as_array().unwrap().clone();
    assert_eq!(list("/")[2].as_str(), Some("/index.html"));
    let up = list("/m/")[1].as_str().unwrap().to_string();
    assert!(up.starts_with('@'), "{up}");
    assert_eq!(list("/e/")[1].as_str(), Some("=403"));
    // What stays reported: a PHP-style fallback with a query, `alias`, a
    // named location that does more than proxy, one that is missing.
    let i = import(
        "server {\n root /srv;\n location / { try_files $uri /index.php?$args; }\n\
         location ~ \\.php$ { fastcgi_pass unix:/run/php.sock; }\n\
         location /a/ { alias /x/; try_files $uri /a/index.html; }\n\
         location /m/ { try_files $uri @app; }\n\
         location @app { proxy_pass http://127.0.0.1:9; add_header X-A 1; }\n\
         location /n/ { try_files $uri @none; }\n}\n",
    );
    let un = reports(&i, Kind::Unsupported);
    for (line, what) in [
        (
            3,
            "the fallback `/index.php?$args`: nginx hands it to `location ~ \\.php$` (/site/nginx.conf:4), which answers with `fastcgi_pass`",
        ),
        (5, "with `alias`"),
        (7, "in `location @app`"),
        (8, "no `location @none`"),
    ] {
        assert!(
            un.iter()
                .any(|l| l.contains(&format!(":{line}: ")) && l.contains(what)),
            "{line} {what}: {un:#?}"
        );
    }
}

/// Several servers: a server's own `error_page`s are its `[[server]]`'s
/// `error_page` (nginx's per server), the http level's `[[error_page]]`.
#[test]
fn error_pages_differing_between_servers_are_each_servers_own() {
    let i = import(
        "http {\n root /srv;\n error_page 502 /50x.html;\n\
         server { listen 80; server_name a.test; root /srv/a; error_page 404 /missing.html;\n\
           location / { proxy_pass http://127.0.0.1:9; } }\n\
         server { listen 80; server_name b.test; error_page 404 /gone.html;\n\
           location / { proxy_pass http://127.0.0.1:9; } }\n\
         server { listen 80; server_name c.test; location / { proxy_pass http://127.0.0.1:9; } }\n}\n",
    );
    // Only the roots, which serve no files here, are left.
    let un = reports(&i, Kind::Unsupported);
    assert!(un.iter().all(|l| l.contains(": root: ")), "{un:#?}");
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let site = v["error_page"].as_array().unwrap();
    assert_eq!(site.len(), 1, "{}", i.toml);
    assert_eq!(site[0]["file"].as_str(), Some("/srv/50x.html"));
    let s = v["server"].as_array().unwrap();
    let page = |n: usize| s[n]["error_page"][0]["file"].as_str().map(String::from);
    assert_eq!(page(0).as_deref(), Some("/srv/a/missing.html"));
    assert_eq!(page(1).as_deref(), Some("/srv/gone.html"));
    assert!(s[2].get("error_page").is_none(), "the http level's");
}

/// A `try_files` fallback URI nginx hands to another location: written
/// when that location serves the same file the same way, else reported
/// naming the location and what it does differently.
#[test]
fn try_files_fallbacks_another_location_handles() {
    let i = import(
        "server {\n root /srv;\n location / { try_files $uri $uri/ /index.html?$args; }\n\
         location /x/ { try_files $uri /x.html; }\n\
         location = /x.html { root /srv; }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let r = routes(&i);
    let list = |p: &str| {
        r.iter()
            .find(|r| r.get("path").and_then(|v| v.as_str()) == Some(p))
            .unwrap()["try_files"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    // The request's own query does not change the file served.
    assert_eq!(list("/"), "/index.html");
    assert_eq!(list("/x/"), "/x.html");
    let i = import(
        "server {\n root /srv;\n location / { try_files $uri /index.html; }\n\
         location = /index.html { add_header Cache-Control no-store; }\n\
         location /a/ { try_files $uri /app/; }\n\
         location /app/ { proxy_pass http://127.0.0.1:9; }\n\
         location /b/ { try_files $uri /b.html; }\n\
         location = /b.html { root /other; }\n\
         location /c/ { root /c; try_files $uri /nothing; }\n}\n",
    );
    let un = reports(&i, Kind::Unsupported);
    for (line, what) in [
        (
            3,
            "nginx serves it from `location = /index.html` (/site/nginx.conf:4) with that location's own `add_header`",
        ),
        (
            5,
            "nginx hands it to `location /app/` (/site/nginx.conf:6), which proxies `/app/`",
        ),
        (7, "which has another root"),
        (
            9,
            "nginx serves it from `location /` (/site/nginx.conf:3), which has another root",
        ),
    ] {
        assert!(
            un.iter().any(
                |l| l.contains(&format!(":{line}: unsupported: try_files: ")) && l.contains(what)
            ),
            "{line} {what}: {un:#?}"
        );
    }
}

/// A location whose rewrite redirects: a route for the paths its regex
/// finds (`if` on `$uri`), then nginx's 404 for the others; captures in
/// the target stay reported.
#[test]
fn rewrites_that_redirect() {
    let i = import(
        "server { listen 80;\n location /legacy { rewrite ^/legacy$ https://new.example.com/ permanent; }\n\
         location /tmp { rewrite ^ /elsewhere? redirect; }\n\
         location /old/ { rewrite ^/old/(.*)$ /users/$1 permanent; }\n\
         location /moved/ { rewrite ^/(.*)$ https://new.example.com/$1 redirect; }\n}\n",
    );
    let r = routes(&i);
    let at = |p: &str| -> Vec<toml::Table> {
        r.iter()
            .filter(|r| r.get("path").and_then(|v| v.as_str()) == Some(p))
            .cloned()
            .collect()
    };
    let legacy = at("/legacy");
    assert_eq!(legacy.len(), 2, "{}", i.toml);
    assert_eq!(legacy[0]["if"][2].as_str(), Some("^/legacy$"));
    assert_eq!(
        legacy[0]["redirect"].as_str(),
        Some("https://new.example.com/$is_args$args")
    );
    assert_eq!(legacy[0]["redirect_status"].as_integer(), Some(301));
    assert_eq!(legacy[1]["respond"].as_integer(), Some(404));
    let tmp = at("/tmp");
    assert_eq!(
        tmp[0]["redirect"].as_str(),
        Some("$scheme://$host/elsewhere")
    );
    assert_eq!(tmp[0]["redirect_status"].as_integer(), Some(302));
    let un = reports(&i, Kind::Unsupported);
    assert_eq!(un.len(), 1, "{un:#?}");
    assert!(
        un[0].contains(":4: unsupported: rewrite: a rewrite that redirects with `$1`"),
        "{un:#?}"
    );
    assert_eq!(at("/old/")[0]["respond"].as_integer(), Some(404));
    // A capture of the whole path is `$uri`.
    assert_eq!(
        at("/moved/")[0]["redirect"].as_str(),
        Some("https://new.example.com$uri$is_args$args")
    );
    crate::config::Config::parse(&i.toml, std::path::Path::new("/site/rampart.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
}

/// A server-level rewrite that redirects every path (the older spelling
/// of a redirect server) is that server's `return`: alone on its port,
/// the listener's `redirect_https`; beside a content server, its route.
#[test]
fn server_level_rewrites_that_redirect_every_path() {
    let i = import(
        "http {\n server { listen 8080; server_name example.com; rewrite ^ https://$host$request_uri? permanent; }\n\
         server { listen 80; server_name www.example.com; rewrite ^/(.*)$ https://example.com/$1 permanent; }\n\
         server { listen 80; server_name example.com; location / { return 200 ok; } }\n}\n",
    );
    assert!(i.complete(), "{:#?}", i.reports);
    let v: toml::Table = toml::from_str(&i.toml).unwrap();
    let l = v["listener"].as_array().unwrap();
    let alone = l
        .iter()
        .find(|l| l["bind"].as_str() == Some("0.0.0.0:8080"))
        .unwrap();
    assert_eq!(alone["redirect_https"].as_bool(), Some(true), "{}", i.toml);
    let www = &v["server"].as_array().unwrap()[0];
    assert_eq!(www["server_name"][0].as_str(), Some("www.example.com"));
    let route = &www["route"][0];
    assert_eq!(
        route["redirect"].as_str(),
        Some("https://example.com$uri$is_args$args")
    );
    assert_eq!(route["redirect_status"].as_integer(), Some(301));
}
