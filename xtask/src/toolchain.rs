//! Bootstrap: install what a fresh Debian machine lacks to build the XDP
//! program and to run the tests, one line of output per step, reusing what is
//! already there.
//!
//! Building for `bpfel-unknown-none` needs a Rust toolchain with rust-src
//! (`-Z build-std=core`) and bpf-linker built against the same LLVM major:
//!
//! - a rustup nightly that has rust-src is used as is, when present;
//! - otherwise Debian's rustc-web/cargo-web/rust-web-src (with
//!   `RUSTC_BOOTSTRAP=1`; `proxy-user/build.rs` sets that up).
//!
//! bpf-linker is built from crates.io against Debian's `llvm-N-dev`, where N is
//! the LLVM major the chosen rustc reports, into /opt/ebpf-tools.

use std::{
    path::Path,
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context, Result, bail};

use crate::cmd::{exec, is_root, on_path, output, step};

/// Where bpf-linker is installed; `RAMPART_EBPF_TOOLS` overrides it (the
/// build script looks there too).
fn tools_root() -> String {
    std::env::var("RAMPART_EBPF_TOOLS").unwrap_or_else(|_| "/opt/ebpf-tools".into())
}
const BPF_LINKER_VERSION: &str = "0.13.0";

/// What the caller is about to do.
#[derive(Clone, Copy)]
pub struct Needs {
    ebpf: bool,
    test_tools: bool,
    bench_tools: bool,
}

impl Needs {
    pub fn build() -> Needs {
        Needs {
            ebpf: true,
            test_tools: false,
            bench_tools: false,
        }
    }
    pub fn test() -> Needs {
        Needs {
            ebpf: true,
            test_tools: true,
            bench_tools: false,
        }
    }
    pub fn bench() -> Needs {
        Needs {
            ebpf: true,
            test_tools: true,
            bench_tools: true,
        }
    }
    pub fn all() -> Needs {
        Self::bench()
    }
}

/// Commands the tests and benchmarks run, and the Debian package of each.
const TEST_TOOLS: [(&str, &str); 15] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("ping", "iputils-ping"),
    ("bpftool", "bpftool"),
    ("ethtool", "ethtool"),
    ("curl", "curl"),
    ("openssl", "openssl"),
    ("python3", "python3"),
    // The status page is tested in a real (headless) browser.
    ("chromium", "chromium"),
    // The TLS listener is scanned as an auditor would.
    ("testssl", "testssl.sh"),
    // Idle keep-alive memory is compared with nginx's in the same run.
    ("nginx", "nginx-light"),
    // The `combined` access log is read back by a real log analyser.
    ("goaccess", "goaccess"),
    // The fleet's tests share entries through a real Redis (redis-cli comes with it).
    ("redis-server", "redis-server"),
    // Upstream servers named host:port are resolved through a real DNS server.
    ("dnsmasq", "dnsmasq-base"),
    // HAProxy in front sends the PROXY protocol (tests/e2e/proxy_protocol.rs).
    ("haproxy", "haproxy"),
];
/// Python packages the end-to-end tests run (the FastAPI example and a WebSocket client).
const PYTHON_PACKAGES: [&str; 3] = ["fastapi", "uvicorn", "websockets"];
const BENCH_TOOLS: [(&str, &str); 7] = [
    ("xdp-filter", "xdp-tools"),
    ("valgrind", "valgrind"),
    ("nft", "nftables"),
    ("nginx", "nginx-light"),
    ("haproxy", "haproxy"),
    ("wrk", "wrk"),
    ("h2load", "nghttp2-client"),
];

pub fn bootstrap(needs: Needs) -> Result<()> {
    if needs.ebpf {
        ebpf_toolchain()?;
    }
    let mut tools: Vec<(&str, &str)> = Vec::new();
    if needs.test_tools {
        tools.extend(TEST_TOOLS);
    }
    if needs.bench_tools {
        tools.extend(BENCH_TOOLS);
    }
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(cmd, _)| !on_path(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        if !tools.is_empty() {
            step(format!(
                "test tools: present ({})",
                tools.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            ));
        }
    } else {
        step(format!("test tools: installing {}", missing.join(" ")));
        apt_install(&missing)?;
    }
    if needs.test_tools {
        python_packages()?;
    }
    Ok(())
}

/// FastAPI, Uvicorn and websockets for the `python3` on PATH (the one the tests run).
fn python_packages() -> Result<()> {
    let import = format!("import {}", PYTHON_PACKAGES.join(", "));
    if output(Command::new("python3").args(["-c", &import])).is_some() {
        step(format!(
            "python packages: present ({})",
            PYTHON_PACKAGES.join(", ")
        ));
        return Ok(());
    }
    step(format!(
        "python packages: installing {}",
        PYTHON_PACKAGES.join(" ")
    ));
    if output(Command::new("python3").args(["-m", "pip", "--version"])).is_none() {
        apt_install(&["python3-pip"])?;
    }
    let pip = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .args(PYTHON_PACKAGES)
            .status()
            .is_ok_and(|s| s.success())
    };
    // Debian's own python3 refuses pip outside a venv (PEP 668) unless told.
    if pip(&[]) || pip(&["--break-system-packages"]) {
        return Ok(());
    }
    bail!(
        "installing {} with pip failed; install them for python3 by hand",
        PYTHON_PACKAGES.join(", ")
    )
}

fn ebpf_toolchain() -> Result<()> {
    let llvm_major = if let Some(major) = nightly_with_rust_src() {
        step(format!(
            "eBPF toolchain: rustup nightly with rust-src (LLVM {major}), reused"
        ));
        major
    } else {
        if debian_rust_present() {
            step("eBPF toolchain: Debian rustc-web with rust-web-src, reused");
        } else {
            step("eBPF toolchain: installing Debian's rustc-web, cargo-web and rust-web-src");
            apt_install(&["rustc-web", "cargo-web", "rust-web-src"])?;
        }
        llvm_major_of(Command::new("/usr/bin/rustc").arg("-vV"))
            .context("could not read the LLVM version from `/usr/bin/rustc -vV`")?
    };
    let dev = format!("llvm-{llvm_major}-dev");
    if Path::new(&format!("/usr/lib/llvm-{llvm_major}/include/llvm")).exists() {
        step(format!("LLVM: {dev}, reused"));
    } else {
        step(format!(
            "LLVM: installing {dev} (bpf-linker links against it)"
        ));
        apt_install(&[&dev])?;
    }
    bpf_linker(llvm_major)
}

/// The LLVM major of a rustup nightly that has rust-src, if there is one.
fn nightly_with_rust_src() -> Option<u32> {
    let sysroot =
        output(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    if !Path::new(sysroot.trim())
        .join("lib/rustlib/src/rust/library/core")
        .exists()
    {
        return None;
    }
    llvm_major_of(Command::new("rustup").args(["run", "nightly", "rustc", "-vV"]))
}

fn debian_rust_present() -> bool {
    Path::new("/usr/bin/cargo").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").exists()
}

fn llvm_major_of(cmd: &mut Command) -> Option<u32> {
    let text = output(cmd)?;
    let line = text.lines().find(|l| l.starts_with("LLVM version:"))?;
    line.split(':')
        .nth(1)?
        .trim()
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn bpf_linker(llvm_major: u32) -> Result<()> {
    let root = tools_root();
    let bin = format!("{root}/bin/bpf-linker");
    if let Some(v) = output(Command::new(&bin).arg("--version")) {
        step(format!("bpf-linker: {} at {bin}, reused", v.trim()));
        return Ok(());
    }
    step(format!(
        "bpf-linker: building {BPF_LINKER_VERSION} against LLVM {llvm_major} into {root} (about 2 minutes)"
    ));
    let mut cmd = if nightly_with_rust_src().is_some() {
        let mut c = Command::new("rustup");
        c.args(["run", "nightly", "cargo"]);
        c
    } else {
        let mut c = Command::new("/usr/bin/cargo");
        // Debian's cargo with Debian's rustc only: rustup's proxies stay off PATH.
        c.env("PATH", "/usr/bin:/bin")
            .env("RUSTC", "/usr/bin/rustc")
            .env_remove("RUSTUP_TOOLCHAIN");
        c
    };
    cmd.args([
        "install",
        "--locked",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
    ])
    .args(["--features", &format!("llvm-{llvm_major}"), "--root", &root])
    // bpf-linker finds LLVM through LLVM_PREFIX (not LLVM_SYS_*_PREFIX).
    .env("LLVM_PREFIX", format!("/usr/lib/llvm-{llvm_major}"))
    .env_remove("CARGO_TARGET_DIR")
    .env_remove("RUSTFLAGS");
    exec(&mut cmd).with_context(|| {
        format!("building bpf-linker failed; check that llvm-{llvm_major}-dev is installed and crates.io is reachable")
    })
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    if !is_root() {
        bail!(
            "missing packages: {}. Install them as root:\n  apt-get update && apt-get install -y --no-install-recommends {}",
            packages.join(" "),
            packages.join(" ")
        );
    }
    if !APT_UPDATED.swap(true, Ordering::Relaxed) {
        step("apt-get update");
        exec(Command::new("apt-get").args(["update", "-q"]))?;
    }
    exec(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages),
    )
    .with_context(|| format!("apt-get install {} failed", packages.join(" ")))
}
