//! `cargo xtask bench xdp`: builds the release benchmark (`tests/src/bin/xdp_bench.rs`),
//! runs it, and replaces the XDP section of BENCHMARKS.md with its table.

use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    cmd::{cargo, exec, root, step},
    toolchain::{self, Needs},
};

const BEGIN: &str = "<!-- BEGIN xdp (written by `cargo xtask bench xdp`) -->";
const END: &str = "<!-- END xdp -->";

pub fn run(what: &str, quick: bool) -> Result<()> {
    if what != "xdp" {
        bail!("unknown benchmark `{what}`; available: xdp");
    }
    toolchain::bootstrap(Needs::bench())?;
    step("building the benchmark (release)");
    exec(cargo().args([
        "build",
        "--release",
        "--package",
        "tests",
        "--bin",
        "xdp-bench",
    ]))?;
    step("running the XDP benchmark (about 2 minutes; 20 s with --quick)");
    let mut bench = Command::new(root().join("target/release/xdp-bench"));
    if quick {
        bench.arg("--quick");
    }
    let out = bench.output().context("running xdp-bench")?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("xdp-bench failed");
    }
    let table = String::from_utf8(out.stdout)?;
    print!("{table}");
    let command = if quick {
        "cargo xtask bench xdp --quick"
    } else {
        "cargo xtask bench xdp"
    };
    let section = format!("{BEGIN}\nProduced by `{command}`.\n\n{table}{END}");
    let path = root().join("BENCHMARKS.md");
    let old = fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) => format!("{}{section}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    fs::write(&path, new)?;
    step(format!("wrote {}", path.display()));
    Ok(())
}
