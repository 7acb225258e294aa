//! `cargo xtask bench xdp|http|instructions|fleet`: builds rampart and the
//! benchmark in release mode (`tests/src/bin/{xdp_bench,http_bench,instr_bench,fleet_bench}`),
//! runs it, and replaces that benchmark's section of BENCHMARKS.md with its
//! tables. `bench http -j` and `bench http|fleet -- OPTIONS` only print.

use std::{fs, process::Command};

use anyhow::{Context, Result, bail};

use crate::{
    cmd::{cargo, exec, root, step},
    toolchain::{self, Needs},
};

pub fn run(what: &str, quick: bool, json: bool, extra: &[String]) -> Result<()> {
    let (bin, about) = match what {
        "xdp" => (
            "xdp-bench",
            "the XDP benchmark (about 4 minutes; 2 with --quick)",
        ),
        "http" => (
            "http-bench",
            "the HTTP benchmark against nginx and HAProxy, two backends (about 10 minutes; 4 with --quick)",
        ),
        "instructions" => (
            "instr-bench",
            "instructions per request under callgrind, against nginx and HAProxy (about 2 minutes)",
        ),
        "fleet" => (
            "fleet-bench",
            "the fleet's cost to Redis (limits' counts, shared entries, kernel thresholds), 3 to 100 simulated hosts against one redis-server (about 3 minutes; 1 with --quick)",
        ),
        _ => bail!("unknown benchmark `{what}`; available: xdp, http, instructions, fleet"),
    };
    if json && what != "http" {
        bail!("-j is for `cargo xtask bench http` only");
    }
    if !extra.is_empty() && !matches!(what, "http" | "fleet") {
        bail!("options after `--` are for `cargo xtask bench http` and `fleet` only");
    }
    toolchain::bootstrap(Needs::bench())?;
    step("building rampart and the benchmark (release)");
    exec(cargo().args([
        "build",
        "--release",
        "--package",
        "proxy-user",
        "--bin",
        "rampart",
    ]))?;
    exec(cargo().args(["build", "--release", "--package", "tests", "--bin", bin]))?;
    step(format!("running {about}"));
    let mut bench = Command::new(root().join("target/release").join(bin));
    bench.env("RAMPART_BIN", root().join("target/release/rampart"));
    if quick {
        bench.arg("--quick");
    }
    if json {
        bench.arg("--json");
    }
    bench.args(extra);
    let out = bench.output().with_context(|| format!("running {bin}"))?;
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("{bin} failed");
    }
    let table = String::from_utf8(out.stdout)?;
    print!("{table}");
    if json || !extra.is_empty() {
        // Not the default run: printed only.
        return Ok(());
    }
    let command = format!(
        "cargo xtask bench {what}{}",
        if quick { " --quick" } else { "" }
    );
    let begin = format!("<!-- BEGIN {what} (written by `cargo xtask bench {what}`) -->");
    let end = format!("<!-- END {what} -->");
    let section = format!("{begin}\nProduced by `{command}`.\n\n{table}{end}");
    let path = root().join("BENCHMARKS.md");
    let old = fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    fs::write(&path, new)?;
    step(format!("wrote {}", path.display()));
    Ok(())
}
