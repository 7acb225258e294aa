//! `cargo xtask demo`: rampart with its built-in configuration on a
//! self-contained topology.
//!
//! ```text
//!  netns rampart-demo-client                 netns rampart-demo-edge
//!  demo0: 198.18.0.10 (a normal client)  <-veth->  rampart0: 198.18.0.1
//!         198.18.0.50 (a flooder)                  XDP: rampart, built-in config
//!         203.0.113.7 (in the blocklist)
//! ```
//!
//! The demo sends a little traffic from each client (pings, a ping flood and
//! two HTTP requests to the built-in listener on :8080), shows the counters and
//! the per-source table, then leaves rampart running until Ctrl-C (or
//! `--seconds`), and removes the namespaces.

use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{
    cmd::{exec, root, step},
    test::build_rampart,
    toolchain::{self, Needs},
};

const EDGE: &str = "rampart-demo-edge";
const CLIENT: &str = "rampart-demo-client";

/// Deletes the demo namespaces when dropped, also on error.
struct Topology;

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [EDGE, CLIENT] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        step("demo topology removed");
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

fn topology() -> Result<Topology> {
    for ns in [EDGE, CLIENT] {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
        ip(&["netns", "add", ns])?;
    }
    let guard = Topology;
    ip(&[
        "-n", EDGE, "link", "add", "rampart0", "type", "veth", "peer", "name", "demo0", "netns",
        CLIENT,
    ])?;
    for a in ["198.18.0.1/24", "203.0.113.1/24"] {
        ip(&["-n", EDGE, "addr", "add", a, "dev", "rampart0"])?;
    }
    for a in ["198.18.0.10/24", "198.18.0.50/24", "203.0.113.7/24"] {
        ip(&["-n", CLIENT, "addr", "add", a, "dev", "demo0"])?;
    }
    for (ns, dev) in [(EDGE, "rampart0"), (CLIENT, "demo0")] {
        ip(&["-n", ns, "link", "set", dev, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }
    step(format!(
        "demo topology: {CLIENT} (demo0) <-> {EDGE} (rampart0, 198.18.0.1)"
    ));
    Ok(guard)
}

fn ping(src: &str, dst: &str, extra: &[&str]) -> bool {
    in_ns(CLIENT, "ping")
        .args(["-q", "-I", src, "-W", "1"])
        .args(extra)
        .arg(dst)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn rampart(args: &[&str]) -> Result<()> {
    exec(Command::new(root().join("target/debug/rampart")).args(args))
}

pub fn run(seconds: Option<u64>) -> Result<()> {
    toolchain::bootstrap(Needs::test())?;
    build_rampart(false)?;
    if std::path::Path::new("/etc/rampart/rampart.toml").exists() {
        step(
            "note: /etc/rampart/rampart.toml exists and takes precedence over the built-in config",
        );
    }
    let _topology = topology()?;
    step("starting `rampart run` (built-in configuration) in the edge namespace");
    let bin = root().join("target/debug/rampart");
    let mut daemon: Child = in_ns(EDGE, bin.to_str().unwrap())
        .arg("run")
        .spawn()
        .context("starting rampart")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while !String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-n", EDGE, "link", "show", "rampart0"])
            .output()?
            .stdout,
    )
    .contains("xdp")
    {
        if daemon.try_wait()?.is_some() || Instant::now() > deadline {
            anyhow::bail!("rampart did not attach to rampart0");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    step(format!(
        "ping from a normal client (198.18.0.10): {}",
        if ping("198.18.0.10", "198.18.0.1", &["-c", "3", "-i", "0.2"]) {
            "answered"
        } else {
            "NO ANSWER"
        }
    ));
    step(format!(
        "ping from a blocklisted client (203.0.113.7): {}",
        if ping("203.0.113.7", "203.0.113.1", &["-c", "3", "-i", "0.2"]) {
            "answered (unexpected)"
        } else {
            "dropped by XDP"
        }
    ));
    step("ping flood from 198.18.0.50 (100,000 packets at most, 5 s at most)");
    ping(
        "198.18.0.50",
        "198.18.0.1",
        &["-f", "-c", "100000", "-w", "5", "-s", "16"],
    );
    let curl = |path: &str| {
        in_ns(CLIENT, "curl")
            .args([
                "-s",
                "--max-time",
                "3",
                "-w",
                " [%{http_code}]",
                &format!("http://198.18.0.1:8080{path}"),
            ])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    step(format!(
        "HTTP from the client: curl http://198.18.0.1:8080/ -> {}",
        curl("/")
    ));
    step(format!(
        "HTTP from the client: curl http://198.18.0.1:8080/.env -> {}",
        curl("/.env")
    ));
    step("rampart stats");
    rampart(&["stats"])?;
    step("rampart map dump sources_v4");
    rampart(&["map", "dump", "sources_v4"])?;
    match seconds {
        Some(s) => {
            step(format!(
                "rampart keeps running for {s} s; try `rampart map list` or `bpftool map dump pinned /sys/fs/bpf/rampart/verdicts`"
            ));
            std::thread::sleep(Duration::from_secs(s));
        }
        None => {
            step(
                "rampart keeps running; in another terminal try `target/debug/rampart stats --watch`. Ctrl-C stops the demo",
            );
            wait_for_interrupt();
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = daemon.wait()?;
    step(format!("rampart exited ({status})"));
    Ok(())
}

/// Blocks until SIGINT or SIGTERM (which are then not fatal to xtask).
fn wait_for_interrupt() {
    // SAFETY: plain signal-set manipulation on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut sig = 0;
        libc::sigwait(&set, &mut sig);
    }
}
