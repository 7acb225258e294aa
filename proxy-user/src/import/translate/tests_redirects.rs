//! Redirects to a path made absolute as nginx sends them (checked against
//! nginx 1.22: `return 301 /x` on `listen 18931` answers
//! `Location: http://HOST:18931/x`), and `proxy_redirect`'s report.

use super::tests::{import, reports, routes};
use super::tests_keys::parses;
use crate::import::Kind;

/// The `redirect` of the route for `path`.
fn redirect(conf: &str, path: &str) -> String {
    let i = import(conf);
    if !conf.contains("ssl_certificate") {
        // (Certificates it names aside: those files are not here.)
        parses(&i);
    }
    routes(&i)
        .iter()
        .find(|r| {
            let p = r.get("path").or_else(|| r.get("path_exact"));
            p.and_then(|p| p.as_str()) == Some(path) && r.get("redirect").is_some()
        })
        .unwrap_or_else(|| panic!("no redirect for {path}\n{}", i.toml))["redirect"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_path_names_scheme_host_and_a_non_default_port() {
    let on = |listen: &str| {
        redirect(
            &format!("server {{ {listen} location = /r {{ return 301 /x; }} }}\n"),
            "/r",
        )
    };
    assert_eq!(on("listen 8080;"), "$scheme://$host:$server_port/x");
    assert_eq!(on("listen 80;"), "$scheme://$host/x");
    assert_eq!(on(""), "$scheme://$host/x");
    assert_eq!(
        on("listen 443 ssl; ssl_certificate c; ssl_certificate_key k;"),
        "$scheme://$host/x"
    );
    assert_eq!(
        on("listen 80; listen 443 ssl; ssl_certificate c; ssl_certificate_key k;"),
        "$scheme://$host/x"
    );
    // `$uri/` renders to a path: nginx makes it absolute too.
    assert_eq!(
        redirect(
            "server { listen 8080; location /d { return 302 $uri/; } }\n",
            "/d"
        ),
        "$scheme://$host:$server_port$uri/"
    );
    // A URL, or a relative one not starting with `/`, is sent as written.
    assert_eq!(
        redirect(
            "server { location = /r { return 301 https://b.test/x; } }\n",
            "/r"
        ),
        "https://b.test/x"
    );
    assert_eq!(
        redirect("server { location = /r { return 307 x; } }\n", "/r"),
        "x"
    );
}

#[test]
fn rewrite_permanent_to_a_path_is_absolute() {
    let i = import("server { listen 8080; location = /a { rewrite ^/a$ /b permanent; } }\n");
    let r = routes(&i);
    let a = r.iter().find(|r| r.get("redirect").is_some()).unwrap();
    assert_eq!(
        a["redirect"].as_str(),
        Some("$scheme://$host:$server_port/b$is_args$args")
    );
    assert_eq!(a["redirect_status"].as_integer(), Some(301));
}

#[test]
fn absolute_port_and_server_name_in_redirect_are_honoured() {
    let conf = "server { listen 8080; server_name canon.test other.test;\n\
                absolute_redirect off;\n location = /r { return 301 /x; } }\n";
    assert_eq!(redirect(conf, "/r"), "/x");
    let i = import(conf);
    assert!(reports(&i, Kind::NotNeeded).is_empty(), "{:#?}", i.reports);
    assert!(
        reports(&i, Kind::Unsupported).is_empty(),
        "{:#?}",
        i.reports
    );
    // A location's own setting wins over its server's.
    let conf = "server { listen 8080; absolute_redirect off;\n\
                location = /r { absolute_redirect on; return 301 /x; } }\n";
    assert_eq!(redirect(conf, "/r"), "$scheme://$host:$server_port/x");
    let conf = "server { listen 8080; port_in_redirect off;\n\
                location = /r { return 301 /x; } }\n";
    assert_eq!(redirect(conf, "/r"), "$scheme://$host/x");
    let conf = "server { listen 8080; server_name Canon.test other.test;\n\
                server_name_in_redirect on;\n location = /r { return 301 /x; } }\n";
    assert_eq!(redirect(conf, "/r"), "$scheme://canon.test:$server_port/x");
}

#[test]
fn default_and_other_ports_together_are_reported() {
    let conf = "server { listen 80; listen 8080; location = /r { return 301 /x; } }\n";
    assert_eq!(redirect(conf, "/r"), "/x");
    let un = reports(&import(conf), Kind::Unsupported);
    assert_eq!(un.len(), 1, "{un:#?}");
    assert!(un[0].contains("default and other ports"), "{un:#?}");
}

#[test]
fn flags_without_a_path_redirect_are_not_needed() {
    let i = import(
        "server { absolute_redirect off; port_in_redirect off; location / { return 200; } }\n",
    );
    assert_eq!(reports(&i, Kind::NotNeeded).len(), 2, "{:#?}", i.reports);
}

#[test]
fn proxy_redirect_off_is_not_needed_the_rewriting_forms_unsupported() {
    let i = import(
        "upstream up { server 127.0.0.1:9000; }\n\
         server { listen 80;\n\
         location /x/ { proxy_pass http://up/app/; proxy_redirect default; }\n\
         location /y/ { proxy_pass http://up/app/; proxy_redirect http://up/app/ /y/; }\n\
         location /z/ { proxy_pass http://up/app/; proxy_redirect off; } }\n",
    );
    let un: Vec<_> = reports(&i, Kind::Unsupported)
        .into_iter()
        .filter(|r| r.contains("proxy_redirect"))
        .collect();
    assert_eq!(un.len(), 2, "{:#?}", i.reports);
    assert!(un[0].contains("no Location/Refresh rewrite"), "{un:#?}");
    let nn: Vec<_> = reports(&i, Kind::NotNeeded)
        .into_iter()
        .filter(|r| r.contains("proxy_redirect"))
        .collect();
    assert_eq!(nn.len(), 1, "{:#?}", i.reports);
    assert!(nn[0].contains(":5:"), "{nn:#?}");
}
