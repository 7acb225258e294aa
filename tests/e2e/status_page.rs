//! The admin listener's status page in a real browser: headless Chromium
//! loads it while traffic runs (requests through the proxy, a blocked
//! source flooding XDP), and the DOM must show charts that drew data and
//! tables that filled; a screenshot is saved under the test's output folder.

use std::time::{Duration, Instant};

use tests::{
    backend::named_backend,
    daemon::{Daemon, control_section, filter_section},
    netns::{Link, NetNs},
    pins::PinDir,
    privilege::require_root,
    traffic::send_udp,
};

const EDGE: &str = "198.18.3.1";
const CLIENT: &str = "198.18.3.10";
const BLOCKED: &str = "198.18.3.66";

/// Drives headless Chromium in `ns` over the DevTools protocol, in real
/// time (a virtual-time budget would fire the page's polls milliseconds
/// apart, with no traffic between them): loads the status page, lets it
/// poll for `secs`, then returns its DOM and saves a screenshot to `shot`.
const DEVTOOLS: &str = r#"
import base64, json, sys, time, urllib.request
from websockets.sync.client import connect
port, url, secs, shot = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
# Chromium may take a while to start on a loaded machine: up to a minute.
page, last = None, None
for _ in range(600):
    try:
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
            page = json.load(urllib.request.urlopen(req))
        break
    except Exception as e:
        last = e
        time.sleep(0.1)
if page is None:
    sys.exit(f"chromium's DevTools endpoint never answered within 60 s: {last!r}")
ws = connect(page["webSocketDebuggerUrl"], max_size=None)
ids = iter(range(1, 1000))
def call(method, **params):
    n = next(ids)
    ws.send(json.dumps({"id": n, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == n:
            return msg.get("result", {})
call("Page.enable")
call("Page.navigate", url=url)
time.sleep(secs)
dom = call("Runtime.evaluate", expression="document.documentElement.outerHTML")["result"]["value"]
png = call("Page.captureScreenshot", format="png")["data"]
open(shot, "wb").write(base64.b64decode(png))
sys.stdout.write(dom)
"#;

fn browse(ns: &NetNs, profile: &std::path::Path, secs: u32, shot: &std::path::Path) -> String {
    let port = "9333";
    let mut chromium = ns
        .command("chromium")
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,1500",
        ])
        .arg(format!("--remote-debugging-port={port}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium (installed by `cargo xtask bootstrap`)");
    let out = ns
        .command("python3")
        .args([
            "-c",
            DEVTOOLS,
            port,
            "http://127.0.0.1:9901/",
            &secs.to_string(),
        ])
        .arg(shot)
        .output()
        .unwrap();
    let _ = chromium.kill();
    let _ = chromium.wait();
    assert!(
        out.status.success(),
        "devtools session: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attr` on the element with id `id` in a DOM dump.
fn attr(dom: &str, id: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let end = at + dom[at..].find('>')?;
    let tag = &dom[start..end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    Some(tag[v..v + tag[v..].find('"')?].to_string())
}

#[test]
fn the_status_page_draws_live_data_in_a_real_browser() {
    if !require_root("the_status_page_draws_live_data_in_a_real_browser") {
        return;
    }
    let link = Link::new("stp");
    link.edge_addr(&format!("{EDGE}/24"));
    link.client_addr(&format!("{CLIENT}/24"));
    link.client_addr(&format!("{BLOCKED}/24"));
    named_backend(&link.edge, 9001, "app");
    let pins = PinDir::new("status");
    let dir = tests::scratch::Scratch::new("status");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{}\n\
             [upstream.app]\nservers = [\"127.0.0.1:9001\"]\n\n\
             [limit.api]\nrate = \"20r/s\"\nburst = 5\nnodelay = true\n\n\
             [[listener]]\nbind = \"{EDGE}:8080\"\n\n\
             [[route]]\nupstream = \"app\"\nlimit = \"api\"\n",
            filter_section(&link.edge_if, pins.path(), &[BLOCKED]),
            control_section(&dir)
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&link.edge, &config, &link.edge_if);

    // Traffic for the browser to see: requests (some over the limit, 429)
    // and a flood from a blocked source, until the browser is done (40 s at most).
    let client = link.client.name().to_string();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = done.clone();
    let traffic = std::thread::spawn(move || {
        let ns = NetNs::existing(&client);
        let end = Instant::now() + Duration::from_secs(40);
        while Instant::now() < end && !done.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = ns
                .command("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "1",
                    "--interface",
                    CLIENT,
                ])
                .args([
                    format!("http://{EDGE}:8080/"),
                    format!("http://{EDGE}:8080/x"),
                ])
                .stdout(std::process::Stdio::null())
                .status();
            send_udp(&ns, BLOCKED, &format!("{EDGE}:9"), 200);
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let profile = dir.join("chromium");
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("status.png");
    let _ = std::fs::remove_file(&shot);
    // Four or five polls, two seconds apart, while the traffic runs.
    let dom = browse(&link.edge, &profile, 9, &shot);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();

    let polls: u32 = attr(&dom, "updated", "id")
        .and(dom.find("data-polls=\""))
        .map(|at| {
            let v = &dom[at + 12..];
            v[..v.find('"').unwrap()].parse().unwrap()
        })
        .unwrap_or(0);
    assert!(polls >= 3, "the page polled {polls} times:\n{dom}");
    for chart in [
        "chart-rps",
        "chart-p99",
        "chart-conns",
        "chart-drops",
        "chart-429",
    ] {
        let points: u32 = attr(&dom, chart, "data-points")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        assert!(points >= 2, "{chart} drew {points} points:\n{dom}");
        let max: f64 = attr(&dom, chart, "data-max")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0.0);
        if chart != "chart-conns" {
            assert!(max > 0.0, "{chart} shows no data (max {max}):\n{dom}");
        }
    }
    assert_eq!(attr(&dom, "upstreams", "data-rows").as_deref(), Some("1"));
    assert!(dom.contains("XDP on rp0 (native)"), "{dom}");
    assert!(
        dom.contains("blocklisted"),
        "the drop legend names the reason"
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "{} bytes",
        png.len()
    );
    drop(daemon);
    drop(dir);
}
