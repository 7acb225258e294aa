//! The FastAPI scenario of `examples/fastapi`, point by point.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use tests::{daemon::rampart_bin, netns::NetNs, privilege::require_root, process::Spawned};

pub(crate) fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fastapi")
}

/// Python with FastAPI, Uvicorn and websockets, or why not.
pub(crate) fn python_ready() -> Result<(), String> {
    let out = Command::new("python3")
        .args(["-c", "import fastapi, uvicorn, websockets"])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub(crate) struct Scenario {
    pub(crate) ns: NetNs,
    _workers: Vec<Spawned>,
    pub(crate) rampart: Spawned,
    /// Removed last, once rampart and the workers are gone.
    pub(crate) dir: tests::scratch::Scratch,
}

impl Scenario {
    fn start() -> Scenario {
        Scenario::start_with("fapi", |_| {})
    }

    /// The example's directory (app, static files, certificates in
    /// `certs/`) in a temporary copy; `prepare` may write its own
    /// `rampart.toml` there before rampart starts with it.
    pub(crate) fn start_with(name: &str, prepare: impl FnOnce(&Path)) -> Scenario {
        let ns = NetNs::new(name);
        let dir = tests::scratch::Scratch::new(name);
        copy_dir(&example_dir(), &dir);
        tests::certs::self_signed(&dir.join("certs"), "site");
        prepare(&dir);
        // This run's own control socket and state file.
        let cfg = dir.join("rampart.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, text + "\n" + &tests::daemon::control_section(&dir)).unwrap();
        let mut workers = Vec::new();
        for port in 8001..=8004 {
            let mut cmd = ns.command("python3");
            cmd.args([
                "-m",
                "uvicorn",
                "app:app",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-level",
                "warning",
            ])
            .current_dir(&dir);
            let mut w = Spawned::start(
                &format!("uvicorn :{port}"),
                cmd,
                &dir.join(format!("uvicorn-{port}.log")),
            );
            let ns_name = ns.name().to_string();
            w.wait_until(Duration::from_secs(30), || {
                curl_in(
                    &ns_name,
                    &[
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        &format!("http://127.0.0.1:{port}/health"),
                    ],
                ) == "200"
            });
            workers.push(w);
        }
        let mut cmd = ns.command(rampart_bin().to_str().unwrap());
        cmd.args(["run", "-c"])
            .arg(dir.join("rampart.toml"))
            .env("RUST_LOG", "info");
        let mut rampart = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
        let ns_name = ns.name().to_string();
        rampart.wait_until(Duration::from_secs(15), || {
            curl_in(
                &ns_name,
                &[
                    "-sk",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "https://127.0.0.1/health",
                ],
            ) == "200"
        });
        Scenario {
            ns,
            dir,
            _workers: workers,
            rampart,
        }
    }

    pub(crate) fn curl(&self, args: &[&str]) -> String {
        curl_in(self.ns.name(), args)
    }

    /// Sends every one of `urls` at once over HTTP/1.1 (one connection
    /// each); the statuses, one a line, and how many a 100 r/s bucket
    /// drains while the volley lasts (that many more may pass).
    pub(crate) fn volley(&self, urls: &[String]) -> (String, usize) {
        let max = urls.len().to_string();
        let mut args = vec![
            "-sk",
            "--http1.1",
            "--parallel",
            "--parallel-immediate",
            "--parallel-max",
            &max,
            "-w",
            "%{http_code}\n",
            "-o",
            "/dev/null",
        ];
        for u in urls {
            args.push(u);
            args.push("-o");
            args.push("/dev/null");
        }
        let started = std::time::Instant::now();
        let codes = self.curl(&args);
        let drained = (100.0 * started.elapsed().as_secs_f64()).ceil() as usize;
        (codes, drained)
    }
}

pub(crate) fn curl_in(ns: &str, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg("curl")
        .args(["--max-time", "10"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn fastapi_behind_rampart() {
    if !require_root("fastapi_behind_rampart") {
        return;
    }
    if let Err(why) = python_ready() {
        assert!(
            std::env::var("CI").is_err(),
            "FastAPI/Uvicorn/websockets missing under CI: {why}"
        );
        eprintln!("SKIP fastapi_behind_rampart: {why}; `cargo xtask test` installs them");
        return;
    }
    let s = Scenario::start();

    // Plain HTTP: 301 to the same host, path and query over HTTPS.
    let out = s.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "http://localhost/api/items?page=2",
    ]);
    assert_eq!(out, "301 https://localhost/api/items?page=2");

    // TLS 1.2 and 1.3 accepted; 1.1 refused. HTTP/2 offered through ALPN.
    for (flags, want) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "1.1 200"),
        (&["--tlsv1.3"][..], "2 200"),
    ] {
        let mut args = vec![
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ];
        args.extend_from_slice(flags);
        if want.starts_with('2') {
            args.push("--http2");
        } else {
            args.push("--http1.1");
        }
        args.push("https://localhost/health");
        assert_eq!(s.curl(&args), want, "{flags:?}");
    }
    let h2 = s.curl(&[
        "-sk",
        "--http2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version}",
        "https://localhost/api/x",
    ]);
    assert_eq!(h2, "2", "HTTP/2 through ALPN");
    let old = s.curl(&[
        "-sk",
        "--tlsv1.1",
        "--tls-max",
        "1.1",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "https://localhost/health",
    ]);
    assert_eq!(old, "000", "TLS 1.1 must be refused");

    // Static files with a 30-day expiry and immutable caching, never touching the app.
    let head = s
        .curl(&[
            "-sk",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "https://localhost/static/app.css",
        ])
        .to_ascii_lowercase();
    assert!(
        head.starts_with("http/2 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    // Both Cache-Control lines, as nginx's `expires 30d; add_header ...`.
    assert!(head.contains("cache-control: max-age=2592000"), "{head}");
    assert!(head.contains("cache-control: public, immutable"), "{head}");
    assert!(head.contains("expires: "), "{head}");
    assert!(
        !head.contains("server: uvicorn"),
        "static files are not the app's: {head}"
    );
    // [http] hsts and security_headers (nginx `add_header ... always`).
    assert!(
        head.contains("strict-transport-security: max-age=31536000; includesubdomains"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    assert!(head.contains("x-frame-options: sameorigin"), "{head}");

    // [compress] (nginx `gzip on`): a JSON file for a client that asks
    // comes compressed, and whole once decoded.
    let json = format!("[{}1]", "{\"item\": 12345},".repeat(200));
    std::fs::write(s.dir.join("static/items.json"), &json).unwrap();
    let head = s
        .curl(&[
            "-sk",
            "--compressed",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-w",
            "size=%{size_download}",
            "https://localhost/static/items.json",
        ])
        .to_ascii_lowercase();
    assert!(head.contains("content-encoding: "), "{head}");
    assert!(head.contains("vary: accept-encoding"), "{head}");
    let wire: usize = head
        .rsplit("size=")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(wire < json.len() / 4, "{wire} bytes for {}", json.len());

    // Dotfile paths: 404 from rampart, the app never sees them.
    for path in ["/api/.env", "/.git", "/static/x.svn", "/api/app.config"] {
        let out = s.curl(&[
            "-sk",
            "-w",
            " %{http_code}",
            &format!("https://localhost{path}"),
        ]);
        assert!(out.ends_with(" 404"), "{path}: {out}");
        assert!(!out.contains("pid"), "{path} reached the app: {out}");
    }

    // Other spellings of those paths (issue 13, items 3 and 4): rampart
    // matches the normalised path, so they meet the same deny route, and
    // the static route serves no dotfile whatever the regex misses.
    // `--path-as-is`: curl would resolve the dot segments itself.
    std::fs::write(s.dir.join("static/.env"), "SECRET=1").unwrap();
    std::fs::create_dir_all(s.dir.join("static/.git")).unwrap();
    std::fs::write(s.dir.join("static/.git/config"), "[core] SECRET").unwrap();
    for (i, path) in [
        "/api/.%65nv",
        "/api/.env/",
        "/api/x/../.env",
        "/api/x/%2e%2e/.env",
        "/%61pi/.git/confi%67",
        "/api/.env.local",
        "/static/.%65nv",
        "/static/.env/",
        "/static/.git/confi%67",
        "/static/.git/config",
    ]
    .iter()
    .enumerate()
    {
        // The deny route counts toward `scanners` (more than 10 404s in a
        // minute ban the source): these come from sources of their own.
        let source = format!("127.0.0.{}", 2 + i % 3);
        let out = s.curl(&[
            "-sk",
            "--path-as-is",
            "--interface",
            &source,
            "-w",
            " %{http_code}",
            &format!("https://localhost{path}"),
        ]);
        assert!(out.ends_with(" 404"), "{path}: {out}");
        assert!(
            !out.contains("pid") && !out.contains("SECRET"),
            "{path} reached the app or a dotfile: {out}"
        );
    }
    // An encoded slash or a climb above the root has no single meaning: 400.
    for path in ["/api/a%2Fb", "/api/../../etc/passwd", "/api/a%00"] {
        let out = s.curl(&[
            "-sk",
            "--path-as-is",
            "-w",
            " %{http_code}",
            &format!("https://localhost{path}"),
        ]);
        assert!(out.ends_with(" 400"), "{path}: {out}");
        assert!(!out.contains("pid"), "{path} reached the app: {out}");
    }
    // An allowed route, spelled otherwise, reaches FastAPI and means the
    // same thing to it: the path parameter it routes on is the same.
    for (path, want) in [
        ("/%61pi/who?x=1", "who"),
        ("//api//who?x=1", "who"),
        ("/api/a/../who?x=1", "who"),
        ("/api/./%77ho?x=1", "who"),
        ("/api/caf%c3%a9?x=1", "caf\u{e9}"),
        ("/api/a%40b?x=1", "a@b"),
    ] {
        let body = s.curl(&["-sk", "--path-as-is", &format!("https://localhost{path}")]);
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(v["path"], want, "{path}: {body}");
        assert_eq!(v["query"], "x=1", "{path}: {body}");
    }

    // /api/ goes to the workers, spread over them, with forwarded headers.
    let mut pids = BTreeSet::new();
    for _ in 0..12 {
        let body = s.curl(&["-sk", "https://localhost/api/who?x=1"]);
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["forwarded_proto"], "https");
        assert_eq!(v["forwarded_for"], "127.0.0.1");
        assert_eq!(v["request_id"].as_str().map(str::len), Some(32));
        pids.insert(v["pid"].as_u64().unwrap());
    }
    assert!(
        pids.len() >= 3,
        "least_conn used {} of 4 workers: {pids:?}",
        pids.len()
    );

    // 10 MB limit: 413 above, accepted below.
    let big = s.dir.join("big.bin");
    std::fs::write(&big, vec![b'x'; 11 << 20]).unwrap();
    let small = s.dir.join("small.bin");
    std::fs::write(&small, vec![b'x'; 1 << 20]).unwrap();
    let code = s.curl(&[
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--data-binary",
        &format!("@{}", big.display()),
        "https://localhost/api/upload",
    ]);
    assert_eq!(code, "413");
    let body = s.curl(&[
        "-sk",
        "--data-binary",
        &format!("@{}", small.display()),
        "https://localhost/api/upload",
    ]);
    assert!(body.contains(&format!("\"size\":{}", 1 << 20)), "{body}");

    // 100 r/s, burst 50, nodelay: a volley of 150 gets 51-60 through and 429 for the rest.
    // Every other one spelled `/%61pi/`: the same route, so the same zone.
    let urls: Vec<String> = (0..150)
        .map(|i| {
            let prefix = if i % 2 == 0 { "/api/" } else { "/%61pi/" };
            format!("https://localhost{prefix}burst/{i}")
        })
        .collect();
    // While the volley lasts the bucket drains at 100/s: that much more may pass.
    let (codes, drained) = s.volley(&urls);
    let ok = codes.lines().filter(|c| *c == "200").count();
    let limited = codes.lines().filter(|c| *c == "429").count();
    assert_eq!(ok + limited, 150, "{codes}");
    assert!(
        ok >= 51 && ok <= 51 + drained + 1,
        "{ok} passed ({drained} drained during the volley), {limited} limited"
    );

    // WebSocket under /ws/ with a real client.
    let ws = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", s.ns.name()))
        .args(["--", "python3", "-c"])
        .arg(
            "import asyncio, ssl, websockets\n\
             async def main():\n\
             \x20   ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             \x20   async with websockets.connect('wss://localhost/ws/echo', ssl=ctx) as ws:\n\
             \x20       for i in range(3):\n\
             \x20           await ws.send(f'hi {i}')\n\
             \x20           print(await ws.recv())\n\
             asyncio.run(main())\n",
        )
        .output()
        .unwrap();
    assert!(
        ws.status.success(),
        "{}",
        String::from_utf8_lossy(&ws.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ws.stdout),
        "echo: hi 0\necho: hi 1\necho: hi 2\n"
    );

    // /health is proxied but not logged; /api is.
    assert_eq!(
        s.curl(&["-sk", "https://localhost/health"]),
        "{\"status\":\"ok\"}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = s.rampart.log_text();
    assert!(log.contains("\"GET /api/who?x=1 HTTP/2.0\" 200 "), "{log}");
    assert!(
        !log.contains("GET /health "),
        "access_log = false on /health:\n{log}"
    );
    // SAFETY: signalling the rampart we started.
    unsafe { libc::kill(s.rampart.pid(), libc::SIGTERM) };
}
