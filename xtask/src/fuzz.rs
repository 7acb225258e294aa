//! `cargo xtask fuzz [TARGET] [--secs N]`: the cargo-fuzz targets in `fuzz/`
//! (docs/fuzzing.md), each run for N seconds from its seed corpus.
//!
//! ```text
//! nightly + cargo-fuzz + a C++ compiler (for libFuzzer), installed if missing
//!   cargo fuzz build                    AddressSanitizer, debug assertions, fuzz/target
//!   per target: fuzz/target/HOST/release/TARGET -max_total_time=N
//!               fuzz/target/corpus/TARGET fuzz/corpus/TARGET
//!                                       new finds go to the scratch dir (first),
//!                                       the committed seeds are only read
//!   -> executions, exec/s, corpus size, crashes; a crash fails with its artifact
//! ```
//!
//! `xdp` runs the XDP program through BPF_PROG_TEST_RUN and needs root: it is
//! skipped without (and fails under CI=true, as the kernel tests do).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::{
    cmd::{cargo, exec, is_root, on_path, output, root, step},
    toolchain::apt_install,
};

/// Every target, cheapest first.
pub const TARGETS: [&str; 7] = [
    "config",
    "values",
    "route_path",
    "h1_differential",
    "limit",
    "nginx_import",
    "xdp",
];

/// What one run did.
struct Report {
    target: &'static str,
    execs: u64,
    per_sec: u64,
    corpus: u64,
}

/// Builds the fuzz targets and runs `target` (or every target) for `secs`
/// seconds each; fails on the first crash, naming its artifact.
pub fn run(target: Option<&str>, secs: u64) -> Result<()> {
    let targets: Vec<&'static str> = match target {
        None => TARGETS.to_vec(),
        Some(t) => match TARGETS.iter().find(|k| **k == t) {
            Some(k) => vec![*k],
            None => bail!("no fuzz target `{t}`; the targets: {}", TARGETS.join(", ")),
        },
    };
    tools()?;
    step("building the fuzz targets (nightly, AddressSanitizer)");
    exec(cargo_fuzz().arg("build"))?;
    // The binaries are run directly: `cargo fuzz run` would rebuild before
    // each target whenever a source changed meanwhile.
    let host = output(Command::new("rustup").args(["run", "nightly", "rustc", "-vV"]))
        .and_then(|v| {
            v.lines()
                .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        })
        .context("reading the nightly rustc's host triple")?;
    let bins = root().join("fuzz/target").join(host).join("release");
    let mut reports = Vec::new();
    for t in targets {
        if t == "xdp" && !is_root() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                bail!("the xdp fuzz target needs root (CAP_BPF); CI=true forbids skipping it");
            }
            step("SKIPPED fuzz target xdp: not root (it runs the program with BPF_PROG_TEST_RUN)");
            continue;
        }
        reports.push(run_one(&bins, t, secs)?);
    }
    for r in &reports {
        step(format!(
            "fuzz {:<10} {:>9} executions, {:>6} exec/s, corpus {:>5}, 0 crashes",
            r.target, r.execs, r.per_sec, r.corpus
        ));
    }
    Ok(())
}

fn run_one(bins: &Path, target: &'static str, secs: u64) -> Result<Report> {
    let fuzz = root().join("fuzz");
    let scratch = fuzz.join("target/corpus").join(target);
    let logs = fuzz.join("target/logs");
    let artifacts = fuzz.join("artifacts").join(target);
    for dir in [&scratch, &logs, &artifacts] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    step(format!(
        "fuzzing {target} for {secs} s (log: {})",
        log_path.display()
    ));
    // The scratch corpus comes first: libFuzzer writes new units there only.
    let status = Command::new(bins.join(target))
        .current_dir(&fuzz)
        .env("ASAN_OPTIONS", "detect_odr_violation=0")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        // A unit slower than this is a hang: reported as a crash.
        .arg("-timeout=10")
        .arg(&scratch)
        .arg(fuzz.join("corpus").join(target))
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .with_context(|| format!("could not run {}", bins.join(target).display()))?;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    if !status.success() {
        let excerpt = crash_excerpt(&text);
        let artifact = artifact(&text).map_or_else(
            || format!("see {}", log_path.display()),
            |a| format!("artifact: {}", a.display()),
        );
        bail!(
            "fuzz target {target} failed ({status}); {artifact}\n{excerpt}\n\
             reproduce: cd fuzz && cargo +nightly fuzz run {target} ARTIFACT"
        );
    }
    Ok(Report {
        target,
        execs: stat(&text, "stat::number_of_executed_units:").unwrap_or(0),
        per_sec: stat(&text, "stat::average_exec_per_sec:").unwrap_or(0),
        corpus: corpus_size(&text).unwrap_or(0),
    })
}

/// `cargo fuzz` on the rustup nightly (cargo-fuzz needs `-Zsanitizer`),
/// building into `fuzz/target`; nothing of the toolchain running xtask leaks in.
fn cargo_fuzz() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz"])
        .current_dir(root())
        // proxy-user's build.rs puts the eBPF build under $CARGO_TARGET_DIR too.
        .env("CARGO_TARGET_DIR", root().join("fuzz/target"));
    for var in ["CARGO", "RUSTC", "RUSTDOC", "RUSTUP_TOOLCHAIN", "RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    cmd
}

/// A rustup nightly, cargo-fuzz and a C++ compiler (libfuzzer-sys builds libFuzzer).
fn tools() -> Result<()> {
    if output(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_none() {
        bail!(
            "fuzzing needs a rustup nightly toolchain (cargo-fuzz uses -Zsanitizer=address); \
             install one with `rustup toolchain install nightly --profile minimal`"
        );
    }
    if !["c++", "g++", "clang++"].iter().any(|c| on_path(c)) {
        apt_install(&["g++"])?;
    }
    if output(cargo_fuzz().arg("--version")).is_none() {
        step("installing cargo-fuzz");
        exec(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}

/// The number after `key` in libFuzzer's final statistics.
fn stat(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

/// Units in the corpus at the end: `corp: N/SIZE` on the last status line.
fn corpus_size(text: &str) -> Option<u64> {
    let line = text.lines().rev().find(|l| l.contains(" corp: "))?;
    let after = line.split(" corp: ").nth(1)?;
    after.split('/').next()?.trim().parse().ok()
}

/// The crash input libFuzzer wrote: `Test unit written to PATH`.
fn artifact(text: &str) -> Option<PathBuf> {
    text.lines()
        .rev()
        .find_map(|l| l.split("Test unit written to ").nth(1))
        .map(|p| Path::new(p.trim()).to_path_buf())
}

/// The panic message and a few lines after it, or the log's last lines.
fn crash_excerpt(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("panicked at") || l.contains("ERROR: AddressSanitizer"))
        .unwrap_or(lines.len().saturating_sub(20));
    lines[start..lines.len().min(start + 8)].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_output() {
        let text = "#16\tINITED cov: 66 ft: 104 corp: 15/5496b exec/s: 0 rss: 58Mb\n\
                    #88439\tDONE   cov: 83 ft: 195 corp: 1726/1092Kb lim: 1833 exec/s: 4211 rss: 451Mb\n\
                    stat::number_of_executed_units: 88439\n\
                    stat::average_exec_per_sec:     4211\n";
        assert_eq!(stat(text, "stat::number_of_executed_units:"), Some(88439));
        assert_eq!(stat(text, "stat::average_exec_per_sec:"), Some(4211));
        assert_eq!(corpus_size(text), Some(1726));
        let crash = "artifact_prefix='/f/artifacts/limit/'; Test unit written to /f/artifacts/limit/crash-20fe\n";
        assert_eq!(
            artifact(crash),
            Some(PathBuf::from("/f/artifacts/limit/crash-20fe"))
        );
    }
}
