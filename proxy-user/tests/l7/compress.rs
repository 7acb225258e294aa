//! `[compress]` with curl as the client: gzip, brotli and zstd chosen from
//! Accept-Encoding, for static files and proxied responses; what is never
//! compressed; and the headers nginx's gzip filter sets.

use std::{collections::HashMap, path::Path, process::Command};

use crate::support::{backend, proxy, test_dir};

struct Got {
    status: u16,
    headers: HashMap<String, String>,
    /// The body, decoded by curl (`--compressed`).
    body: Vec<u8>,
    /// Body bytes on the wire (curl's `size_download`).
    wire: usize,
}

/// `curl -sS --compressed URL` with `args` (an `Accept-Encoding` given in
/// `args` replaces curl's; curl still decodes what comes back); header
/// names lowercased, repeated ones joined.
async fn curl(url: String, args: &[&str]) -> Got {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--compressed", "-D", "/dev/stderr", "-o", "-"])
            .args(["-w", "\n%{size_download}"])
            .args(&args)
            .arg(&url)
            .output()
            .expect("curl runs");
        assert!(out.status.success(), "curl {url}: {out:?}");
        let head = String::from_utf8_lossy(&out.stderr).to_string();
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers = HashMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                headers
                    .entry(k)
                    .and_modify(|old: &mut String| *old = format!("{old}, {v}"))
                    .or_insert(v);
            }
        }
        let mut body = out.stdout;
        let nl = body.iter().rposition(|b| *b == b'\n').unwrap();
        let wire = String::from_utf8_lossy(&body[nl + 1..]).parse().unwrap();
        body.truncate(nl);
        Got {
            status,
            headers,
            body,
            wire,
        }
    })
    .await
    .unwrap()
}

/// A 100 KB JSON document, made the same way every time.
pub fn sample_json(bytes: usize) -> String {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < bytes {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{i},"name":"item {i}","price":{}.{:02},"tags":["t{}","t{}"],"in_stock":{}}}"#,
            (i * 7919) % 1000,
            i % 100,
            i % 13,
            i % 7,
            i.is_multiple_of(3)
        ));
        i += 1;
    }
    out.push(']');
    out
}

fn site(dir: &Path) -> std::path::PathBuf {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("data.json"), sample_json(100_000)).unwrap();
    std::fs::write(www.join("small.json"), "{\"ok\":true}").unwrap();
    std::fs::write(www.join("pic.png"), vec![0x89u8; 4096]).unwrap();
    www
}

fn config(backend: std::net::SocketAddr, compress: &str) -> String {
    format!(
        r#"
{compress}

[[listener]]
bind = "127.0.0.1:0"

[upstream.app]
servers = ["{backend}"]

[[route]]
path = "/www/"
static = "www/"

[[route]]
upstream = "app"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_coding_round_trips_through_curl_for_static_and_proxied() {
    let b = backend(0).await;
    let dir = test_dir("compress");
    let original = sample_json(100_000);
    site(&dir);
    let p = proxy(&dir, &config(b.addr, "[compress]")).await;
    let base = format!("http://{}", p.addr());
    let pad = "x".repeat(2000);
    for (accept, want) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip;q=0.5, br;q=0.9, zstd;q=0.1", "br"),
        ("gzip, deflate, br, zstd", "zstd"),
    ] {
        let h = format!("Accept-Encoding: {accept}");
        // Static: the 100 KB file, compressed, decoding to the file.
        let got = curl(format!("{base}/www/data.json"), &["-H", &h]).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.headers["content-encoding"], want, "{accept}");
        assert_eq!(got.headers["vary"], "Accept-Encoding");
        assert!(got.headers["etag"].starts_with("W/\""), "{:?}", got.headers);
        assert!(!got.headers.contains_key("content-length"));
        assert!(!got.headers.contains_key("accept-ranges"));
        assert!(got.wire < original.len() / 4, "{want}: {} bytes", got.wire);
        assert_eq!(got.body, original.as_bytes(), "{want}");
        // Proxied: the backend's JSON echo (over min_length by its query).
        let got = curl(format!("{base}/echo?pad={pad}"), &["-H", &h]).await;
        assert_eq!(got.headers["content-encoding"], want, "{accept}");
        let v: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(v["query"], format!("pad={pad}"));
    }
    // curl's own Accept-Encoding (deflate, gzip, br, zstd) gets zstd.
    let got = curl(format!("{base}/www/data.json"), &[]).await;
    assert_eq!(got.headers["content-encoding"], "zstd");
    assert_eq!(got.body, original.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_never_compressed() {
    let b = backend(0).await;
    let dir = test_dir("compress-never");
    site(&dir);
    let p = proxy(
        &dir,
        &config(
            b.addr,
            "[compress]\nencodings = [\"gzip\"]\nmin_length = \"1k\"",
        ),
    )
    .await;
    let base = format!("http://{}", p.addr());
    let gz = ["-H", "Accept-Encoding: gzip, br, zstd"];
    let plain = |g: &Got| !g.headers.contains_key("content-encoding");
    // Identity asked for: sent as it is, but Vary says it depends on it.
    let g = curl(
        format!("{base}/www/data.json"),
        &["-H", "Accept-Encoding: identity"],
    )
    .await;
    assert!(plain(&g) && g.headers["vary"] == "Accept-Encoding");
    assert_eq!(g.headers["content-length"], g.wire.to_string());
    // Offered codings only: br/zstd are not enabled, gzip is.
    let g = curl(format!("{base}/www/data.json"), &gz).await;
    assert_eq!(g.headers["content-encoding"], "gzip");
    let g = curl(
        format!("{base}/www/data.json"),
        &["-H", "Accept-Encoding: br"],
    )
    .await;
    assert!(plain(&g));
    // Under min_length, an image, a HEAD, a range.
    let g = curl(format!("{base}/www/small.json"), &gz).await;
    assert!(plain(&g));
    // A proxied JSON answer under 1k: as it is, and no Vary from rampart.
    let g = curl(format!("{base}/small"), &gz).await;
    assert!(
        plain(&g) && !g.headers.contains_key("vary"),
        "{:?}",
        g.headers
    );
    let g = curl(format!("{base}/www/pic.png"), &gz).await;
    assert!(plain(&g) && g.wire == 4096);
    let g = curl(
        format!("{base}/www/data.json"),
        &[&gz[..], &["-I"]].concat(),
    )
    .await;
    assert!(plain(&g) && g.status == 200);
    let g = curl(
        format!("{base}/www/data.json"),
        &[&gz[..], &["-r", "0-99"]].concat(),
    )
    .await;
    assert_eq!((g.status, g.wire), (206, 100));
    assert!(plain(&g));
    // A 304 to a conditional request with the weakened tag.
    let g = curl(format!("{base}/www/data.json"), &gz).await;
    let etag = g.headers["etag"].clone();
    let inm = format!("If-None-Match: {etag}");
    let g = curl(
        format!("{base}/www/data.json"),
        &[&gz[..], &["-H", &inm]].concat(),
    )
    .await;
    assert_eq!(g.status, 304);
    assert!(plain(&g) && g.wire == 0);
}

/// With no `[compress]`, nothing changes: no encoding, no Vary on a
/// proxied answer (static files always send `Vary: Accept-Encoding`, for
/// their precompressed `.gz`/`.br` siblings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_section_compresses_nothing() {
    let b = backend(0).await;
    let dir = test_dir("compress-off");
    site(&dir);
    let p = proxy(&dir, &config(b.addr, "")).await;
    let g = curl(
        format!("http://{}/www/data.json", p.addr()),
        &["-H", "Accept-Encoding: gzip, br, zstd"],
    )
    .await;
    assert!(!g.headers.contains_key("content-encoding"));
    assert!(g.headers["etag"].starts_with('"'));
    let pad = "x".repeat(2000);
    let g = curl(
        format!("http://{}/echo?pad={pad}", p.addr()),
        &["-H", "Accept-Encoding: gzip, br, zstd"],
    )
    .await;
    assert!(!g.headers.contains_key("content-encoding"));
    assert!(!g.headers.contains_key("vary"));
}
