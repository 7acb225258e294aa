//! Builds the XDP program (`proxy-ebpf`) for `bpfel-unknown-none` and puts the
//! objects in OUT_DIR, where `src/filter/object.rs` embeds them.
//!
//! This is a cargo-in-cargo build with a toolchain chosen here rather than the
//! one building this crate, because compiling `core` for BPF needs rust-src:
//!
//! 1. `RAMPART_EBPF_CARGO=/path/to/cargo` if set (with `RUSTC_BOOTSTRAP=1`);
//! 2. a rustup nightly that has rust-src (`rustup run nightly cargo`);
//! 3. Debian's `rustc-web` (`/usr/bin/cargo`, sources in `/usr/lib/rustlib/src`)
//!    with `RUSTC_BOOTSTRAP=1`.
//!
//! `cargo xtask bootstrap` installs (3) and bpf-linker into /opt/ebpf-tools.
//! The inner build has its own target dir (`target/ebpf`), shared by every
//! profile of the outer build so `core` is compiled for BPF once.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const BINS: [&str; 2] = ["rampart-xdp", "bench-progs"];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for p in [
        "proxy-ebpf/src",
        "proxy-ebpf/Cargo.toml",
        "proxy-common/src",
        "proxy-common/Cargo.toml",
        "Cargo.lock",
    ] {
        // Relative to this package (as cargo reads it), not absolute: a
        // target directory copied to another checkout then still sees this
        // checkout's sources change, instead of the old checkout's.
        println!("cargo:rerun-if-changed=../{p}");
    }
    println!("cargo:rerun-if-env-changed=RAMPART_EBPF_CARGO");
    println!("cargo:rerun-if-env-changed=RAMPART_EBPF_TOOLS");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("ebpf");

    let mut cmd = ebpf_cargo();
    cmd.current_dir(&root)
        .args([
            "build",
            "--package",
            "proxy-ebpf",
            "--release",
            "--target",
            "bpfel-unknown-none",
        ])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        // BTF for the maps (aya reads typed map definitions from it); debuginfo feeds BTF.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            "-C\x1fdebuginfo=2\x1f-C\x1flink-arg=--btf",
        );
    let output = cmd
        .output()
        .unwrap_or_else(|e| fail(&format!("could not run the eBPF cargo: {e}")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The inner build's diagnostics are otherwise invisible: pass them on.
    if !output.status.success() || stderr.contains("warning:") {
        for line in stderr
            .lines()
            .filter(|l| !l.trim_start().starts_with("Compiling"))
        {
            println!("cargo:warning={line}");
        }
    }
    if !output.status.success() {
        fail("building proxy-ebpf failed (output above)");
    }
    for bin in BINS {
        let built = target_dir.join("bpfel-unknown-none/release").join(bin);
        std::fs::copy(&built, out.join(bin))
            .unwrap_or_else(|e| fail(&format!("copying {}: {e}", built.display())));
    }
}

/// The cargo that can build for BPF, with a clean environment: nothing of the
/// outer build (RUSTC, RUSTFLAGS, CARGO_*, rustup overrides) may leak into it.
fn ebpf_cargo() -> Command {
    // Where `cargo xtask bootstrap` put bpf-linker.
    let tools = env::var("RAMPART_EBPF_TOOLS").unwrap_or_else(|_| "/opt/ebpf-tools".into());
    let tools_bin = format!("{tools}/bin");
    let home = env::var("HOME").unwrap_or_else(|_| "/root".into());
    let path = env::var("PATH").unwrap_or_default();
    let mut keep: Vec<(String, String)> = vec![("HOME".into(), home.clone())];
    for var in [
        "CARGO_HOME",
        "RUSTUP_HOME",
        "CARGO_NET_OFFLINE",
        "CARGO_REGISTRIES_CRATES_IO_PROTOCOL",
    ] {
        if let Ok(v) = env::var(var) {
            keep.push((var.into(), v));
        }
    }
    if let Ok(cargo) = env::var("RAMPART_EBPF_CARGO") {
        let mut cmd = clean(Command::new(cargo), &keep);
        cmd.env("PATH", format!("{tools_bin}:{path}"))
            .env("RUSTC_BOOTSTRAP", "1");
        return cmd;
    }
    if nightly_has_rust_src() {
        let mut cmd = clean(Command::new("rustup"), &keep);
        cmd.args(["run", "nightly", "cargo"])
            .env("PATH", format!("{tools_bin}:{path}"));
        return cmd;
    }
    if Path::new("/usr/bin/cargo").exists()
        && Path::new("/usr/lib/rustlib/src/rust/library/core").exists()
    {
        let mut cmd = clean(Command::new("/usr/bin/cargo"), &keep);
        // rustup's proxies must not be on PATH, or Debian's cargo would call them.
        cmd.env(
            "PATH",
            format!("{tools_bin}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        )
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1");
        return cmd;
    }
    fail(
        "no Rust toolchain with rust-src to build the XDP program for bpfel-unknown-none.\n\
         Run `cargo xtask bootstrap` (installs Debian's rustc-web, cargo-web, rust-web-src \
         and bpf-linker), or install a rustup nightly with `rustup component add rust-src \
         --toolchain nightly` and `cargo install bpf-linker`.",
    )
}

fn clean(mut cmd: Command, keep: &[(String, String)]) -> Command {
    cmd.env_clear();
    for (k, v) in keep {
        cmd.env(k, v);
    }
    cmd
}

fn nightly_has_rust_src() -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib/src/rust/library/core")
            .exists()
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    for line in msg.lines() {
        println!("cargo:warning={line}");
    }
    std::process::exit(1);
}
