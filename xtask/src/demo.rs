//! `cargo xtask demo`: rampart with its built-in configuration on a
//! self-contained topology, with traffic and live counters.
//!
//! ```text
//!  netns rampart-demo-client                    netns rampart-demo-edge
//!  demo0: 198.18.0.10  a legitimate client   <-veth->  rampart0: 198.18.0.1, 203.0.113.1
//!         198.18.0.66  an abuser (ignores 429s)         XDP + `rampart run` (built-in config)
//!         198.18.0.50  a UDP flooder                    backends 127.0.0.1:9001, :9002
//!         203.0.113.7  a source in the blocklist
//! ```
//!
//! The legitimate client is served; the abuser gets 429s until the
//! escalation rule bans it in the kernel; the flooder is cut down by the
//! per-source packet limit; the blocklisted source never gets an answer. A
//! line of counters is printed every second for `--duration` seconds (or
//! until Ctrl-C), then everything the demo made is removed: namespaces,
//! processes, the pinned link, and the pin directory and state file if the
//! demo created them.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::{
    build::build_rampart,
    cmd::{exec, root, step},
    toolchain::{self, Needs},
};

const EDGE: &str = "rampart-demo-edge";
const CLIENT: &str = "rampart-demo-client";
const PIN_DIR: &str = "/sys/fs/bpf/rampart";
const STATE_FILE: &str = "/var/lib/rampart/state.json";
const LEGIT: &str = "198.18.0.10";
const ABUSER: &str = "198.18.0.66";
const FLOODER: &str = "198.18.0.50";
const BLOCKED: &str = "203.0.113.7";

/// Everything the demo started or created, undone on drop (also on error).
struct Demo {
    children: Vec<Child>,
    pins_existed: bool,
    state_existed: bool,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // SAFETY: signalling our own children.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
        for ns in [EDGE, CLIENT] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_file(Path::new(PIN_DIR).join("link_rampart0"));
        if !self.pins_existed {
            let _ = std::fs::remove_dir_all(PIN_DIR);
        }
        if !self.state_existed {
            let _ = std::fs::remove_file(STATE_FILE);
            // Only if empty: someone else's files stay.
            let _ = std::fs::remove_dir("/var/lib/rampart");
        }
        step("demo removed: namespaces, processes, pinned link (and pins and state it created)");
    }
}

fn ip(args: &[&str]) -> Result<()> {
    exec(Command::new("ip").args(args))
}

fn in_ns(ns: &str, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/run/netns/{ns}"))
        .arg("--")
        .arg(program);
    c
}

fn topology() -> Result<()> {
    for ns in [EDGE, CLIENT] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns])?;
    }
    ip(&[
        "-n", EDGE, "link", "add", "rampart0", "type", "veth", "peer", "name", "demo0", "netns",
        CLIENT,
    ])?;
    for a in ["198.18.0.1/24", "203.0.113.1/24"] {
        ip(&["-n", EDGE, "addr", "add", a, "dev", "rampart0"])?;
    }
    for a in [LEGIT, ABUSER, FLOODER] {
        ip(&[
            "-n",
            CLIENT,
            "addr",
            "add",
            &format!("{a}/24"),
            "dev",
            "demo0",
        ])?;
    }
    ip(&[
        "-n",
        CLIENT,
        "addr",
        "add",
        &format!("{BLOCKED}/24"),
        "dev",
        "demo0",
    ])?;
    for (ns, dev) in [(EDGE, "rampart0"), (CLIENT, "demo0")] {
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    step(format!(
        "topology: {CLIENT} (demo0: {LEGIT} legitimate, {ABUSER} abuser, {FLOODER} flooder, \
         {BLOCKED} blocklisted) <-> {EDGE} (rampart0: 198.18.0.1)"
    ));
    Ok(())
}

/// A demo backend: answers every request with its name.
fn backend(port: u16) -> Result<Child> {
    let script = format!(
        "import http.server\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   protocol_version = 'HTTP/1.1'\n\
         \x20   def do_GET(self):\n\
         \x20       body = b'hello from backend {port}\\n'\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Length', str(len(body)))\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         \x20   def log_message(self, *a):\n\
         \x20       pass\n\
         http.server.ThreadingHTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    );
    in_ns(EDGE, "python3")
        .args(["-c", &script])
        .spawn()
        .context("starting a demo backend (python3)")
}

/// A client loop in the client namespace: `curl` from `src` every `pause`
/// seconds (0: back to back), for at most `secs`; each status code is
/// counted into `codes` (index: 2xx, 429, no answer).
fn client(src: &str, pause: &str, secs: u64, codes: Arc<[AtomicU64; 3]>) -> Result<Child> {
    let script = format!(
        "end=$(( $(date +%s) + {secs} )); while [ $(date +%s) -lt $end ]; do \
         curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 1 --interface {src} http://198.18.0.1:8080/demo/; \
         sleep {pause}; done"
    );
    let mut child = in_ns(CLIENT, "sh")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting a curl loop")?;
    let out = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let i = match line.trim() {
                c if c.starts_with('2') => 0,
                "429" => 1,
                _ => 2,
            };
            codes[i].fetch_add(1, Ordering::Relaxed);
        }
    });
    Ok(child)
}

/// A UDP flood from `src`, about 60,000 packets a second for `secs`.
fn flooder(src: &str, secs: u64) -> Result<Child> {
    let script = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{src}', 0))\n\
         end = time.time() + {secs}\n\
         while time.time() < end:\n\
         \x20   for _ in range(600):\n\
         \x20       s.sendto(b'flood', ('198.18.0.1', 9))\n\
         \x20   time.sleep(0.01)\n"
    );
    in_ns(CLIENT, "python3")
        .args(["-c", &script])
        .spawn()
        .context("starting the flooder")
}

fn rampart_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = Command::new(root().join("target/debug/rampart"))
        .arg("-j")
        .args(args)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

pub fn run(duration: u64) -> Result<()> {
    // Ctrl-C must reach the cleanup, not kill xtask.
    on_interrupt();
    toolchain::bootstrap(Needs::test())?;
    build_rampart(false)?;
    if Path::new("/etc/rampart/rampart.toml").exists() {
        bail!(
            "/etc/rampart/rampart.toml exists and would replace the built-in configuration the demo runs; move it aside first"
        );
    }
    let mut demo = Demo {
        children: Vec::new(),
        pins_existed: Path::new(PIN_DIR).exists(),
        state_existed: Path::new(STATE_FILE).exists(),
    };
    topology()?;
    for port in [9001, 9002] {
        demo.children.push(backend(port)?);
    }
    step("starting `rampart run` (built-in configuration) in the edge namespace");
    let bin = root().join("target/debug/rampart");
    let daemon = in_ns(EDGE, bin.to_str().unwrap())
        .arg("run")
        .env("RUST_LOG", "warn")
        .spawn()
        .context("starting rampart")?;
    demo.children.insert(0, daemon);
    let deadline = Instant::now() + Duration::from_secs(15);
    let backends_up = || {
        [9001, 9002].iter().all(|p| {
            in_ns(EDGE, "curl")
                .args(["-s", "-o", "/dev/null", "--max-time", "1"])
                .arg(format!("http://127.0.0.1:{p}/"))
                .status()
                .is_ok_and(|s| s.success())
        })
    };
    while rampart_json(&["upstream", "list"]).is_none() || !backends_up() {
        if demo.children[0].try_wait()?.is_some() || Instant::now() > deadline {
            bail!("rampart did not start");
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let legit: Arc<[AtomicU64; 3]> = Arc::default();
    let abuser: Arc<[AtomicU64; 3]> = Arc::default();
    demo.children
        .push(client(LEGIT, "0.2", duration, legit.clone())?);
    demo.children
        .push(client(ABUSER, "0", duration, abuser.clone())?);
    demo.children.push(flooder(FLOODER, duration)?);
    demo.children.push(
        in_ns(CLIENT, "ping")
            .args([
                "-q",
                "-i",
                "0.2",
                "-w",
                &duration.to_string(),
                "-I",
                BLOCKED,
            ])
            .arg("203.0.113.1")
            .stdout(Stdio::null())
            .spawn()?,
    );
    step(format!(
        "traffic for {duration} s (Ctrl-C stops it): {LEGIT} polite, {ABUSER} ignoring 429s, \
         {FLOODER} flooding UDP, {BLOCKED} pinging from the blocklist"
    ));

    let baseline = rampart_json(&["stats"]).unwrap_or_default();
    let started = Instant::now();
    let mut banned_at: Option<u64> = None;
    while started.elapsed() < Duration::from_secs(duration) && !INTERRUPTED.load(Ordering::Relaxed)
    {
        std::thread::sleep(Duration::from_secs(1));
        let t = started.elapsed().as_secs();
        let verdicts = rampart_json(&["stats"]).unwrap_or_default();
        // Counters since the demo started (pinned counters outlive daemons).
        let drops = |name: &str| {
            let at = |v: &serde_json::Value| v["verdicts"][name]["packets"].as_u64().unwrap_or(0);
            at(&verdicts).saturating_sub(at(&baseline))
        };
        let bans = rampart_json(&["block", "list"]).unwrap_or_default();
        let ban = bans
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["cidr"] == ABUSER && e["kind"] == "ban");
        if ban.is_some() && banned_at.is_none() {
            banned_at = Some(t);
        }
        let n = |c: &[AtomicU64; 3], i: usize| c[i].load(Ordering::Relaxed);
        println!(
            "t={t:>3}s  legitimate: {} served | abuser: {} served, {} refused (429), {} unanswered | \
             kernel drops: blocklisted {}, banned {}, pps-limited {} (passed {})",
            n(&legit, 0),
            n(&abuser, 0),
            n(&abuser, 1),
            n(&abuser, 2),
            drops("blocklisted"),
            drops("banned"),
            drops("pps_limited"),
            drops("pass"),
        );
        if let (Some(at), Some(b)) = (banned_at, ban)
            && at == t
        {
            println!(
                "        ban issued: {ABUSER} ({}, {}s left): {}",
                b["origin"].as_str().unwrap_or("?"),
                b["expires_in"],
                b["reason"].as_str().unwrap_or("")
            );
        }
    }
    step("rampart block list (after the demo)");
    let _ = Command::new(&bin).args(["block", "list"]).status();
    // The demo's ban is the demo's: do not leave it in a state file it did not create.
    let _ = Command::new(&bin)
        .args(["block", "del", ABUSER])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    drop(demo);
    Ok(())
}

/// Set by SIGINT or SIGTERM: the demo stops its traffic and cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn interrupted(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Catches SIGINT and SIGTERM (children get the default action back at exec).
fn on_interrupt() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, interrupted as *const () as libc::sighandler_t) };
    }
}
