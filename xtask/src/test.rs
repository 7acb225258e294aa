//! `cargo xtask test`: every tier, in order of cost.
//!
//! 1. unit and in-process tests of the default members (`cargo test`), and
//!    the in-process L7 suite again on rampart's own HTTP/1 server;
//! 2. the privileged kernel tests (`tests` crate): BPF_PROG_TEST_RUN fixtures,
//!    rate-limit accuracy, and real traffic on veth in network namespaces.
//!    They run one at a time: the accuracy tests measure time on both CPUs.
//!    Then the FastAPI scenario again on rampart's own HTTP/1 server;
//! 3. the Debian package, built from the debug build and checked;
//! 4. every fuzz target for 20 s from its seed corpus (`fuzz/`).
//!
//! The reliability cases print their figures at the end. `cargo xtask soak`
//! runs their long versions against a release build, and fuzzes longer.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{
    build::build_rampart,
    cmd::{cargo, exec, is_root, root, step},
    toolchain::{self, Needs},
};

pub fn run_tests(filter: Option<&str>) -> Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    step("unit and in-process tests");
    let mut unit = cargo();
    unit.args([
        "test",
        "--workspace",
        "--exclude",
        "tests",
        "--exclude",
        "proxy-ebpf",
    ]);
    if let Some(f) = filter {
        unit.args(["--", f]);
    }
    exec(&mut unit)?;

    if !is_root() {
        if ci {
            bail!(
                "the kernel tests need root (CAP_BPF, CAP_NET_ADMIN); CI=true forbids skipping them"
            );
        }
        step("SKIPPED the kernel tests: not root (run `sudo -E cargo xtask test`)");
        return Ok(());
    }
    step(
        "privileged tests: kernel tier (BPF_PROG_TEST_RUN, veth) and the FastAPI scenario end to end",
    );
    let mut kernel = cargo();
    kernel
        .args(["test", "--package", "tests", "--", "--test-threads=1"])
        .env("RAMPART_BIN", root().join("target/debug/rampart"));
    if let Some(f) = filter {
        kernel.arg(f);
    }
    clear_figures();
    let outcome = exec(&mut kernel);
    print_figures();
    outcome?;
    Ok(())
}

/// Where the reliability cases record their figures (tests/reliability).
fn figures() -> std::path::PathBuf {
    root().join("target/tmp/reliability/figures.txt")
}

fn clear_figures() {
    let _ = std::fs::remove_file(figures());
}

/// Prints the figures the reliability cases recorded in this run.
pub fn print_figures() {
    if let Ok(text) = std::fs::read_to_string(figures()) {
        step("reliability figures (RELIABILITY.md records them with their targets)");
        for line in text.lines() {
            println!("  {line}");
        }
    }
}

/// `cargo xtask soak`: the reliability suite's long versions against a
/// release build (RAMPART_SOAK=1 lengthens every case), the upgrade and
/// reload storm, then every fuzz target for `fuzz_secs`.
pub fn soak(fuzz_secs: u64) -> Result<()> {
    toolchain::bootstrap(Needs::test())?;
    build_rampart(true)?;
    if !is_root() {
        bail!("the soak runs privileged tests: run it as root (`sudo -E cargo xtask soak`)");
    }
    step("reliability suite, long versions (release build)");
    let mut suite = cargo();
    suite
        .args([
            "test",
            "--package",
            "tests",
            "--test",
            "reliability",
            "--test",
            "e2e",
        ])
        .args([
            "--",
            "--test-threads=1",
            "--skip",
            "fastapi",
            "--skip",
            "status_page",
        ])
        .args(["--skip", "tls_scan"])
        .env("RAMPART_BIN", root().join("target/release/rampart"))
        .env("RAMPART_SOAK", "1");
    clear_figures();
    let outcome = exec(&mut suite);
    print_figures();
    outcome?;
    crate::fuzz::run(None, fuzz_secs)
}

/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_SECS: u64 = 20;

pub fn all(filter: Option<&str>) -> Result<()> {
    toolchain::bootstrap(Needs::test())?;
    build_rampart(false)?;
    run_tests(filter)?;
    if filter.is_none() {
        // The Debian package, from the debug build: built and checked.
        crate::package::package(false)?;
        // Every fuzz target for a bounded time (longer runs: `cargo xtask fuzz`).
        crate::fuzz::run(None, FUZZ_SECS)?;
    }
    leftovers();
    Ok(())
}

/// Reports namespaces or pins a crashed test run left behind (guards clean up
/// on panic; only a killed run leaves any).
fn leftovers() {
    let out = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout);
        let ours: Vec<&str> = text.lines().filter(|l| l.starts_with("rt")).collect();
        if !ours.is_empty() {
            step(format!(
                "warning: test namespaces left behind: {}",
                ours.join(", ")
            ));
        }
    }
}
