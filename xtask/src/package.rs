//! `cargo xtask package`: a Debian package of rampart, built with
//! `dpkg-deb` from a staged tree: the binary, the systemd unit, a starting
//! configuration (a conffile), the logrotate config, the man page, bash
//! completions, the docs and examples. Then the package is checked: its
//! contents listed, extracted, and the extracted binary run.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

use crate::{
    build::build_rampart,
    cmd::{exec, root, step},
    toolchain::{self, Needs},
};

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

fn output_of(bin: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(bin).args(args).output()?;
    if !out.status.success() {
        bail!("{} {args:?} failed", bin.display());
    }
    Ok(out.stdout)
}

/// Builds the package; returns its path.
pub fn package(release: bool) -> Result<PathBuf> {
    toolchain::bootstrap(Needs::build())?;
    build_rampart(release)?;
    let profile = if release { "release" } else { "debug" };
    let bin = root().join("target").join(profile).join("rampart");
    let version = String::from_utf8(output_of(&bin, &["--version"])?)?
        .split_whitespace()
        .nth(1)
        .unwrap_or("0.0.0")
        .to_string();
    let stage = root().join("target/debian/stage");
    let _ = std::fs::remove_dir_all(&stage);
    let r = root();
    step(format!("staging the package tree in {}", stage.display()));
    copy(&bin, &stage.join("usr/bin/rampart"))?;
    copy(
        &r.join("packaging/rampart.service"),
        &stage.join("lib/systemd/system/rampart.service"),
    )?;
    copy(
        &r.join("packaging/rampart.toml"),
        &stage.join("etc/rampart/rampart.toml"),
    )?;
    copy(
        &r.join("packaging/rampart.logrotate"),
        &stage.join("etc/logrotate.d/rampart"),
    )?;
    for doc in [
        "configuration.md",
        "kernel-tier.md",
        "metrics.md",
        "operations.md",
    ] {
        copy(
            &r.join("docs").join(doc),
            &stage.join("usr/share/doc/rampart").join(doc),
        )?;
    }
    copy(
        &r.join("examples/fastapi/rampart.toml"),
        &stage.join("usr/share/doc/rampart/examples/fastapi.toml"),
    )?;
    for f in ["rampart-alerts.yml", "grafana-dashboard.json"] {
        copy(
            &r.join("packaging/monitoring").join(f),
            &stage.join("usr/share/doc/rampart/monitoring").join(f),
        )?;
    }
    let man = stage.join("usr/share/man/man8/rampart.8");
    std::fs::create_dir_all(man.parent().unwrap())?;
    std::fs::write(&man, output_of(&bin, &["man"])?)?;
    exec(Command::new("gzip").args(["-9n", "-f"]).arg(&man))?;
    let completion = stage.join("usr/share/bash-completion/completions/rampart");
    std::fs::create_dir_all(completion.parent().unwrap())?;
    std::fs::write(&completion, output_of(&bin, &["completions", "bash"])?)?;
    let debian = stage.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    std::fs::write(
        debian.join("control"),
        format!(
            "Package: rampart\nVersion: {version}\nArchitecture: amd64\nMaintainer: rampart developers <rampart@localhost>\n\
             Section: net\nPriority: optional\nDepends: libc6 (>= 2.36)\nRecommends: logrotate\n\
             Description: edge filter and reverse proxy with an XDP fast path\n \
             rampart drops traffic from blocked networks, banned sources and per-source\n \
             floods in XDP, and serves HTTP/1.1, HTTP/2 and WebSockets in front of app\n \
             servers: TLS, routes, static files, request limits, least-connections\n \
             balancing, metrics, and zero-downtime upgrades.\n"
        ),
    )?;
    std::fs::write(
        debian.join("conffiles"),
        "/etc/rampart/rampart.toml\n/etc/logrotate.d/rampart\n",
    )?;
    let deb = root().join(format!("target/debian/rampart_{version}_amd64.deb"));
    exec(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&stage)
            .arg(&deb),
    )?;
    verify(&deb)?;
    step(format!("package: {}", deb.display()));
    Ok(deb)
}

/// Lists the package, extracts it, and runs the extracted binary.
fn verify(deb: &Path) -> Result<()> {
    let list = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(deb)
        .output()?;
    let list = String::from_utf8_lossy(&list.stdout);
    for path in [
        "./usr/bin/rampart",
        "./lib/systemd/system/rampart.service",
        "./etc/rampart/rampart.toml",
        "./etc/logrotate.d/rampart",
        "./usr/share/man/man8/rampart.8.gz",
        "./usr/share/bash-completion/completions/rampart",
    ] {
        if !list.contains(path) {
            bail!("the package lacks {path}");
        }
    }
    let extracted = root().join("target/debian/extracted");
    let _ = std::fs::remove_dir_all(&extracted);
    exec(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&extracted))?;
    let bin = extracted.join("usr/bin/rampart");
    output_of(&bin, &["--version"])?;
    // The shipped configuration is valid as shipped.
    let check = Command::new(&bin)
        .args(["config", "check"])
        .arg(extracted.join("etc/rampart/rampart.toml"))
        .output()?;
    if !check.status.success() {
        bail!(
            "the packaged configuration does not check: {}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    step("package checked: contents listed, extracted, binary runs, configuration checks");
    Ok(())
}
