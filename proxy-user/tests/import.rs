//! `rampart config import nginx` against the corpus in `tests/import/`:
//! each `corpus/NAME/nginx.conf` has its expected translation
//! (`expected.toml`) and report lines (`expected.report`), and the seed
//! article's configuration, translated, passes `rampart config check`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p proxy-user --test import` rewrites the
//! golden files; review the diff.

use std::path::{Path, PathBuf};

use proxy_user::{
    config::Config,
    import::{self, Kind},
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/import")
}

/// The translation and its report lines, with the corpus directory taken
/// out of every path so the golden files do not depend on the checkout.
fn render(dir: &Path) -> (String, String, bool) {
    let imported = import::nginx_file(&dir.join("nginx.conf")).unwrap();
    let prefix = format!("{}/", dir.display());
    let toml = imported.toml.replace(&prefix, "");
    let report: String = imported
        .reports
        .iter()
        .filter(|r| r.kind != Kind::Translated)
        .map(|r| format!("{r}\n").replace(&prefix, ""))
        .collect();
    (toml, report, imported.complete())
}

fn check_golden(path: &Path, got: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn corpus_matches_its_golden_files() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(corpus().join("corpus"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for dir in names.iter().chain([corpus().join("seed")].iter()) {
        let (toml, report, _) = render(dir);
        // Whatever was reported, the output is valid TOML of rampart's shape.
        let value: toml::Value =
            toml::from_str(&toml).unwrap_or_else(|e| panic!("{}: {e}\n{toml}", dir.display()));
        assert!(
            value.get("route").is_some() || value.get("server").is_some(),
            "{}: no routes",
            dir.display()
        );
        // Every report line is `file:line: kind: directive: why`.
        for line in report.lines() {
            let mut parts = line.splitn(3, ':');
            let (file, num) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            assert!(!file.is_empty() && num.parse::<usize>().is_ok(), "{line}");
        }
        passes_config_check(dir, &toml);
        check_golden(&dir.join("expected.toml"), &toml);
        check_golden(&dir.join("expected.report"), &report);
    }
}

#[test]
fn seed_translation_passes_config_check() {
    let dir = std::env::temp_dir().join(format!("rampart-import-seed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("static")).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.join("site.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("site.key"), cert.signing_key.serialize_pem()).unwrap();
    let text = std::fs::read_to_string(corpus().join("seed/nginx.conf"))
        .unwrap()
        .replace(
            "/etc/ssl/certs/sivaro.crt",
            &dir.join("site.crt").display().to_string(),
        )
        .replace(
            "/etc/ssl/private/sivaro.key",
            &dir.join("site.key").display().to_string(),
        )
        .replace(
            "/var/www/static/",
            &format!("{}/", dir.join("static").display()),
        )
        .replace("/var/log/nginx/", &format!("{}/", dir.display()));
    let imported = import::nginx_text(&text, &dir.join("nginx.conf")).unwrap();
    // Everything translated: the redirect to $server_name (the server's
    // one name) is redirect_https, which names the host clients asked for.
    let unsupported: Vec<String> = imported
        .reports
        .iter()
        .filter(|r| r.kind == Kind::Unsupported)
        .map(ToString::to_string)
        .collect();
    assert!(unsupported.is_empty(), "{unsupported:#?}");
    assert!(imported.complete());
    let cfg = Config::parse(&imported.toml, &dir.join("rampart.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    // nginx's semantics, kept: the regex location before the prefixes, the
    // longest prefix before `/`, 503 for limited requests, round robin off.
    let order: Vec<String> = cfg.routes.iter().map(|r| r.name()).collect();
    assert_eq!(
        order,
        [
            "~ (?i).(env|git|svn|config)$",
            "/static/",
            "/health",
            "/api/",
            "/ws/",
            "/"
        ]
    );
    assert_eq!(cfg.limits["api_limit"].status, 503);
    assert_eq!(cfg.upstreams["uvicorn_servers"].max_fails, 3);
    assert_eq!(
        cfg.upstreams["uvicorn_servers_2"].read_timeout.as_secs(),
        86_400
    );
    assert!(cfg.listeners.iter().any(|l| l.redirect_https));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn syntax_errors_name_file_and_line() {
    let e = import::nginx_text(
        "http {\n  server {\n    listen 80\n  }\n",
        Path::new("/x/bad.conf"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/x/bad.conf:4: unexpected \"}\" in \"listen\""
    );
}

/// The translation passes rampart's validation (`rampart config check`)
/// once the files it names exist: its static directories, certificates
/// and access log are pointed at scratch ones first.
fn passes_config_check(dir: &Path, text: &str) {
    let scratch = std::env::temp_dir().join(format!(
        "rampart-import-check-{}-{}",
        std::process::id(),
        dir.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("www")).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(scratch.join("c.pem"), cert.cert.pem()).unwrap();
    std::fs::write(scratch.join("k.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut value: toml::Table = toml::from_str(text).unwrap();
    let s = |p: PathBuf| toml::Value::String(p.display().to_string());
    if let Some(http) = value.get_mut("http").and_then(|v| v.as_table_mut())
        && http.get("access_log").and_then(|v| v.as_str()) != Some("off")
        && http.contains_key("access_log")
    {
        http.insert("access_log".into(), s(scratch.join("access.log")));
    }
    // Error pages (top level, a server's, a route's) read a scratch file.
    std::fs::write(scratch.join("page.html"), "<p>error</p>").unwrap();
    let page = s(scratch.join("page.html"));
    let fix_pages = |t: &mut toml::Table| {
        for p in t
            .get_mut("error_page")
            .and_then(|v| v.as_array_mut())
            .into_iter()
            .flatten()
        {
            p.as_table_mut()
                .unwrap()
                .insert("file".into(), page.clone());
        }
    };
    fix_pages(&mut value);
    let fix = |r: &mut toml::Value| {
        let r = r.as_table_mut().unwrap();
        fix_pages(r);
        for k in ["static", "root"] {
            if r.contains_key(k) {
                r.insert(k.into(), s(scratch.join("www")));
            }
        }
        if r.contains_key("auth_basic_user_file") {
            // `openssl passwd -6 -salt rampartsalt secret`
            std::fs::write(
                scratch.join("htpasswd"),
                "admin:$6$rampartsalt$p/IZfdmABYM8zgeTbkTS/uIVSOtg9ZQ5QtLOqJcB4hdx5v3emVj1b2t.CnL9.cAj2HcTxNZOg.UffjDqxWdFI1\n",
            )
            .unwrap();
            r.insert("auth_basic_user_file".into(), s(scratch.join("htpasswd")));
        }
    };
    // Top-level routes, and each `[[server]]`'s.
    for r in value
        .get_mut("route")
        .and_then(|v| v.as_array_mut())
        .into_iter()
        .flatten()
    {
        fix(r);
    }
    for srv in value
        .get_mut("server")
        .and_then(|v| v.as_array_mut())
        .into_iter()
        .flatten()
    {
        fix_pages(srv.as_table_mut().unwrap());
        for r in srv
            .get_mut("route")
            .and_then(|v| v.as_array_mut())
            .into_iter()
            .flatten()
        {
            fix(r);
        }
    }
    for l in value
        .get_mut("listener")
        .and_then(|v| v.as_array_mut())
        .into_iter()
        .flatten()
    {
        let l = l.as_table_mut().unwrap();
        let pair = |_: &toml::Value| {
            let mut t = toml::Table::new();
            t.insert("cert".into(), s(scratch.join("c.pem")));
            t.insert("key".into(), s(scratch.join("k.pem")));
            toml::Value::Table(t)
        };
        let tls = match l.get("tls") {
            Some(toml::Value::Array(a)) => Some(toml::Value::Array(a.iter().map(pair).collect())),
            Some(v) => Some(pair(v)),
            None => None,
        };
        if let Some(t) = tls {
            l.insert("tls".into(), t);
        }
    }
    let checked = toml::to_string(&value).unwrap();
    if let Err(e) = Config::parse(&checked, &scratch.join("rampart.toml")) {
        panic!(
            "{}: the translation fails config check: {e}\n{checked}",
            dir.display()
        );
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The fuzz target's oracle (fuzz/fuzz_targets/nginx_import.rs) on a few
/// thousand deterministic mutations of the corpus, so plain `cargo test`
/// checks it too: never a panic; a `file:line` error with a line of the
/// text, or TOML with rampart's sections and `file:line` reports, which
/// rampart's validation accepts.
#[test]
fn mutated_configs_give_toml_or_file_line_errors() {
    const FILE: &str = "/nonexistent-import-dir/nginx.conf";
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for dir in [
        "corpus/certbot",
        "corpus/static_site",
        "corpus/django",
        "corpus/api_gateway",
        "seed",
    ] {
        seeds.push(std::fs::read(corpus().join(dir).join("nginx.conf")).unwrap());
    }
    let alphabet = b"{};'\"\\$#\n ~*=^/@()";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut errors, mut translated) = (0, 0);
    for round in 0..2000 {
        let mut text = seeds[round % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % (text.len() + 1);
            match next() % 3 {
                0 => text.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                1 if at < text.len() => {
                    text.remove(at);
                }
                _ => {
                    let len = ((next() % 40) as usize).min(text.len() - at.min(text.len()));
                    text.drain(at.min(text.len())..at.min(text.len()) + len);
                }
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines = text.split('\n').count();
        match import::nginx_text(&text, Path::new(FILE)) {
            Err(e) => {
                errors += 1;
                assert!(e.line >= 1 && e.line <= lines, "{e}");
                assert!(
                    e.to_string().starts_with(&format!("{FILE}:{}: ", e.line)),
                    "{e}"
                );
            }
            Ok(i) => {
                translated += 1;
                // And rampart accepts what was written.
                passes_config_check(Path::new(&format!("/mutation/{round}")), &i.toml);
                let t: toml::Table =
                    toml::from_str(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
                assert!(t.keys().all(|k| {
                    [
                        "http",
                        "compress",
                        "error_page",
                        "listener",
                        "upstream",
                        "limit",
                        "route",
                        "server",
                    ]
                    .contains(&k.as_str())
                }));
                for r in &i.reports {
                    let (file, line) = r.at.rsplit_once(':').unwrap();
                    let line: usize = line.parse().unwrap();
                    assert!(line >= 1 && (file != FILE || line <= lines), "{r}");
                }
            }
        }
    }
    assert!(
        errors > 100 && translated > 100,
        "{errors} errors, {translated} translated"
    );
}
