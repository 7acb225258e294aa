//! Request paths through route selection and static file resolution.
//!
//! Input: text, `HOST\nPATH\nACCEPT-ENCODING` (an empty host line: no Host;
//! the third line is optional). PATH is used as it would arrive: only the
//! path of something that parses as a request URI.
//!
//! Oracles:
//! - `path::normalise` refuses exactly the paths [`rampart_fuzz::path`]
//!   gives no meaning, and otherwise returns a path in normal form (no
//!   `//`, `/./`, `/../`, no escape of an unreserved character) that means
//!   the same bytes and that normalising again leaves as it is; it never
//!   panics. The rest runs on the normalised path, as the request path does;
//! - `route::find` picks the first route, in file order, that the model's
//!   matchers accept ([`rampart_fuzz::route`]; regexes replaced by predicates);
//! - when that route serves files, `static_files::serve` answers what
//!   [`rampart_fuzz::static_path`] expects: 400 for undecodable paths and for
//!   any `..` segment after percent-decoding, 404, 301, or 200 with the bytes
//!   of the expected file;
//! - whatever it answers, it never serves a byte from outside the root nor
//!   from a dotfile: every file outside it (reachable through symlinks in
//!   it) and every dotfile in it holds `SECRET`.
#![no_main]

use std::{
    path::{Path, PathBuf},
    sync::LazyLock,
};

use http_body_util::BodyExt;
use hyper::{HeaderMap, Method, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use proxy_user::{
    config::{Config, Route},
    http::{route, static_files},
    path as normal,
};
use rampart_fuzz::{
    path::{looks_normal, meaning},
    route::{PathRule, Rule, first_match},
    static_path::{self, Expect},
};

/// The routes under test; `{ROOT}` is the static root made at start.
const ROUTES: &str = r#"
[upstream.app]
servers = ["127.0.0.1:8001"]
[[route]]
path_regex = '\.(env|git)$'
respond = 404
[[route]]
path_regex = '^/v[0-9]+/users/[0-9]+$'
upstream = "app"
[[route]]
path = "/static/"
static = "{ROOT}"
[[route]]
path_exact = "/health"
respond = 200
[[route]]
host = "admin.example.com"
path = "/"
respond = 403
[[route]]
host = "files.example.com"
root = "{ROOT}"
[[route]]
path = "/api/"
upstream = "app"
"#;

/// The same routes as the model sees them.
fn rules() -> Vec<Rule> {
    vec![
        Rule {
            host: None,
            path: PathRule::Predicate(|p| p.ends_with(".env") || p.ends_with(".git")),
        },
        Rule {
            host: None,
            path: PathRule::Predicate(versioned_user),
        },
        Rule {
            host: None,
            path: PathRule::Prefix("/static/"),
        },
        Rule {
            host: None,
            path: PathRule::Exact("/health"),
        },
        Rule {
            host: Some("admin.example.com"),
            path: PathRule::Prefix("/"),
        },
        Rule {
            host: Some("files.example.com"),
            path: PathRule::Any,
        },
        Rule {
            host: None,
            path: PathRule::Prefix("/api/"),
        },
    ]
}

/// `^/v[0-9]+/users/[0-9]+$`, by hand.
fn versioned_user(p: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    p.strip_prefix("/v")
        .and_then(|rest| rest.split_once("/users/"))
        .is_some_and(|(v, id)| digits(v) && digits(id))
}

struct World {
    /// Canonical static root.
    root: PathBuf,
    routes: Vec<Route>,
    rules: Vec<Rule>,
    rt: tokio::runtime::Runtime,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let base = scratch_dir();
    let root = std::fs::canonicalize(base.join("root")).expect("static root");
    let text = ROUTES.replace("{ROOT}", &root.display().to_string());
    let routes = Config::parse(&text, Path::new("routes.toml"))
        .expect("the target's routes are valid")
        .routes;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    World {
        root,
        routes,
        rules: rules(),
        rt,
    }
});

/// Makes the file tree once per process (removed at exit; trees of dead
/// processes are removed here):
///
/// ```text
/// base/secret.txt, base/outside/{index.html,secret.txt}   all hold SECRET
/// base/root/index.html, a.txt, a.txt.gz, b.txt, b.txt.gz -> ../secret.txt,
///           dir/{index.html,c.txt}, empty/, inlink -> dir,
///           .env, .git/config, dir/.hidden              hold SECRET too
///           link -> ../outside, linkfile -> ../secret.txt, sp ace.txt
/// ```
fn scratch_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    if let Ok(entries) = std::fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("rampart-fuzz-static-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let base = tmp.join(format!("rampart-fuzz-static-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    for d in ["outside", "root/dir", "root/empty", "root/.git"] {
        std::fs::create_dir_all(base.join(d)).expect("scratch dirs");
    }
    for (f, body) in [
        ("secret.txt", "SECRET top"),
        ("outside/index.html", "SECRET index"),
        ("outside/secret.txt", "SECRET outside"),
        ("root/index.html", "root index"),
        ("root/a.txt", "file a"),
        ("root/a.txt.gz", "file a, gzipped"),
        ("root/b.txt", "file b"),
        ("root/dir/index.html", "dir index"),
        ("root/dir/c.txt", "file c"),
        ("root/sp ace.txt", "file with a space"),
        ("root/.env", "SECRET dotfile"),
        ("root/.git/config", "SECRET in a dot directory"),
        ("root/dir/.hidden", "SECRET hidden"),
    ] {
        std::fs::write(base.join(f), body).expect("scratch files");
    }
    for (link, to) in [
        ("inlink", "dir"),
        ("link", "../outside"),
        ("linkfile", "../secret.txt"),
        ("b.txt.gz", "../secret.txt"),
    ] {
        std::os::unix::fs::symlink(to, root.join(link)).expect("scratch symlinks");
    }
    let _ = SCRATCH.set(base.clone());
    // SAFETY: registers a plain function; libFuzzer ends runs with exit().
    unsafe { libc::atexit(remove_scratch) };
    base
}

static SCRATCH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

extern "C" fn remove_scratch() {
    if let Some(base) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(base);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.splitn(3, '\n');
    let host = lines.next().filter(|h| !h.is_empty());
    let raw_path = lines.next().unwrap_or("/");
    let accept = lines.next();
    let Ok(uri) = raw_path.parse::<hyper::Uri>() else {
        return;
    };
    let raw = uri.path();
    let world = &*WORLD;

    let normalised = normal::normalise(raw);
    if !raw.starts_with('/') {
        assert_eq!(normalised.as_deref(), Ok(raw), "{raw:?} is left alone");
        return;
    }
    let expected_meaning = meaning(raw);
    let path = match normalised {
        Err(e) => {
            assert!(
                expected_meaning.is_none(),
                "{raw:?} refused ({e}) but means {expected_meaning:?}"
            );
            return;
        }
        Ok(p) => p,
    };
    let path = &*path;
    if let Err(why) = looks_normal(path) {
        panic!("{raw:?} normalised to {path:?}: {why}");
    }
    assert_eq!(
        meaning(path),
        expected_meaning,
        "{raw:?} normalised to {path:?}, which means something else"
    );
    assert_eq!(
        normal::normalise(path).as_deref(),
        Ok(path),
        "normalising {path:?} again changes it"
    );

    let found = route::find(&world.routes, host, path);
    assert_eq!(
        found,
        first_match(&world.rules, host, path),
        "route for host {host:?} path {path:?}"
    );
    // As the request path does (http/dispatch.rs).
    let Some(sr) = found.and_then(|i| static_files::StaticRoute::of(&world.routes[i])) else {
        return;
    };
    let mut headers = HeaderMap::new();
    if let Some(v) = accept.and_then(|a| a.parse().ok()) {
        headers.insert(header::ACCEPT_ENCODING, v);
    }
    let answer = world.rt.block_on(async {
        match static_files::serve(&sr, &Method::GET, path, &headers).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .expect("reading a static body")
                    .to_bytes();
                (status, body.to_vec())
            }
            Err(e) => (e.status(), Vec::new()),
        }
    });
    let (status, body) = answer;
    assert!(
        !body.windows(6).any(|w| w == b"SECRET"),
        "{path:?} served a file from outside the root"
    );
    let rest = path.strip_prefix(sr.prefix).unwrap_or(path);
    if static_path::climbs(rest) {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path:?} climbs out");
    }
    let expected = static_path::expect(&world.root, sr.prefix, sr.index, path);
    match expected {
        Expect::BadRequest => assert_eq!(status, StatusCode::BAD_REQUEST, "{path:?}"),
        Expect::NotFound => assert_eq!(status, StatusCode::NOT_FOUND, "{path:?}"),
        Expect::Forbidden => assert_eq!(status, StatusCode::FORBIDDEN, "{path:?}"),
        Expect::Redirect => assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{path:?}"),
        Expect::File(file) => {
            assert_eq!(status, StatusCode::OK, "{path:?} should serve {file:?}");
            let plain = std::fs::read(&file).expect("expected file");
            let sent = headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let sibling = static_path::sibling(&world.root, &file, sent);
            let compressed = sibling.map(|s| std::fs::read(s).expect("sibling"));
            assert!(
                body == compressed.unwrap_or(plain),
                "{path:?}: wrong bytes served for {file:?}"
            );
        }
    }
});
