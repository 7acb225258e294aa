//! The FastAPI scenario again, served by the configuration that
//! `rampart config import nginx` makes of the seed article's nginx file
//! (`tests/import/seed/nginx.conf`) instead of the hand translation in
//! `examples/fastapi`. Each check is what nginx does with that file:
//! where nginx and the hand translation differ (503 for limited requests,
//! no ban rules, the article's dotfile regex), nginx is followed.

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use tests::{daemon::rampart_bin, privilege::require_root};

use crate::fastapi::{Scenario, python_ready};

/// The seed nginx file with its paths moved into `dir`, imported there.
fn import_seed(dir: &Path) {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("import/seed/nginx.conf");
    let text = std::fs::read_to_string(seed)
        .unwrap()
        .replace(
            "/etc/ssl/certs/sivaro.crt",
            &dir.join("certs/site.crt").display().to_string(),
        )
        .replace(
            "/etc/ssl/private/sivaro.key",
            &dir.join("certs/site.key").display().to_string(),
        )
        .replace(
            "/var/www/static/",
            &format!("{}/", dir.join("static").display()),
        )
        .replace("/var/log/nginx/", &format!("{}/", dir.display()));
    std::fs::write(dir.join("nginx.conf"), text).unwrap();
    let out = Command::new(rampart_bin())
        .args(["config", "import", "nginx"])
        .arg(dir.join("nginx.conf"))
        .arg("-o")
        .arg(dir.join("rampart.toml"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    // Everything is translated (the redirect to $server_name is
    // redirect_https with redirect_https_host: see the check below).
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(!report.contains(": unsupported: "), "{report}");
    let check = Command::new(rampart_bin())
        .args(["config", "check"])
        .arg(dir.join("rampart.toml"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn fastapi_behind_rampart_imported_from_nginx() {
    if !require_root("fastapi_behind_rampart_imported_from_nginx") {
        return;
    }
    if let Err(why) = python_ready() {
        assert!(
            std::env::var("CI").is_err(),
            "FastAPI/Uvicorn/websockets missing under CI: {why}"
        );
        eprintln!("SKIP fastapi_behind_rampart_imported_from_nginx: {why}");
        return;
    }
    let s = Scenario::start_with("i19ngx", import_seed);

    // Plain HTTP: 301 to HTTPS, same path and query. nginx names
    // $server_name (api.sivaro.com) whatever host was asked for (localhost
    // here), and so does the import (redirect_https_host).
    let out = s.curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        "http://localhost/api/items?page=2",
    ]);
    assert_eq!(out, "301 https://api.sivaro.com/api/items?page=2");

    // `listen 443 ssl http2` and `ssl_protocols TLSv1.2 TLSv1.3`.
    let v12 = s.curl(&[
        "-sk",
        "--http1.1",
        "--tlsv1.2",
        "--tls-max",
        "1.2",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "https://localhost/health",
    ]);
    assert_eq!(v12, "1.1 200");
    let h2 = s.curl(&[
        "-sk",
        "--http2",
        "--tlsv1.3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_version} %{http_code}",
        "https://localhost/api/x",
    ]);
    assert_eq!(h2, "2 200");
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

    // `alias`, `expires 30d`, `add_header Cache-Control "public, immutable"`.
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
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("cache-control: max-age=2592000"), "{head}");
    assert!(head.contains("cache-control: public, immutable"), "{head}");
    assert!(head.contains("expires: "), "{head}");
    assert!(!head.contains("server: uvicorn"), "{head}");

    // `location ~* .(env|git|svn|config)$ { deny all; return 404; }`: the
    // regex is checked before the /api/ and /static/ prefixes.
    for path in ["/api/.env", "/.git", "/static/x.svn", "/api/app.CONFIG"] {
        let out = s.curl(&[
            "-sk",
            "-w",
            " %{http_code}",
            &format!("https://localhost{path}"),
        ]);
        assert!(out.ends_with(" 404"), "{path}: {out}");
        assert!(!out.contains("pid"), "{path} reached the app: {out}");
    }

    // `location /` and `/api/` proxy to the least_conn group, with the
    // forwarding headers nginx's proxy_set_header lines asked for.
    let mut pids = BTreeSet::new();
    for _ in 0..12 {
        let body = s.curl(&["-sk", "https://localhost/api/who?x=1"]);
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["forwarded_proto"], "https");
        assert_eq!(v["forwarded_for"], "127.0.0.1");
        pids.insert(v["pid"].as_u64().unwrap());
    }
    assert!(
        pids.len() >= 3,
        "least_conn used {} of 4 workers: {pids:?}",
        pids.len()
    );

    // `client_max_body_size 10M` on /api/.
    let big = s.dir.join("big.bin");
    std::fs::write(&big, vec![b'x'; 11 << 20]).unwrap();
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

    // `limit_req zone=api_limit burst=50 nodelay` at 100r/s: a volley of
    // 150 gets 51 (plus what drains meanwhile) through, and nginx's 503
    // (limit_req_status's default) for the rest.
    let urls: Vec<String> = (0..150)
        .map(|i| format!("https://localhost/api/burst/{i}"))
        .collect();
    let (codes, drained) = s.volley(&urls);
    let ok = codes.lines().filter(|c| *c == "200").count();
    let limited = codes.lines().filter(|c| *c == "503").count();
    assert_eq!(ok + limited, 150, "{codes}");
    assert!(
        ok >= 51 && ok <= 51 + drained + 1,
        "{ok} passed ({drained} drained), {limited} limited"
    );

    // `location /ws/` with `proxy_read_timeout 86400s`: a WebSocket.
    let ws = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", s.ns.name()))
        .args(["--", "python3", "-c"])
        .arg(
            "import asyncio, ssl, websockets\n\
             async def main():\n\
             \x20   ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             \x20   async with websockets.connect('wss://localhost/ws/echo', ssl=ctx) as ws:\n\
             \x20       await ws.send('hi')\n\
             \x20       print(await ws.recv())\n\
             asyncio.run(main())\n",
        )
        .output()
        .unwrap();
    assert!(
        ws.status.success(),
        "{}",
        String::from_utf8_lossy(&ws.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ws.stdout), "echo: hi\n");

    // `access_log .../access.log combined`, and `access_log off` on /health.
    assert_eq!(
        s.curl(&["-sk", "https://localhost/health"]),
        "{\"status\":\"ok\"}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let log = std::fs::read_to_string(s.dir.join("access.log")).unwrap_or_default();
    assert!(log.contains("\"GET /api/who?x=1 HTTP/2.0\" 200 "), "{log}");
    assert!(
        !log.contains("GET /health "),
        "access_log off on /health:\n{log}"
    );
    // SAFETY: signalling the rampart we started.
    unsafe { libc::kill(s.rampart.pid(), libc::SIGTERM) };
}
