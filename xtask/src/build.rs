//! `cargo xtask build`: the `rampart` binary, with the XDP program embedded
//! (proxy-user's build script builds it). Tests, the demo and the package
//! start from it.

use anyhow::Result;

use crate::cmd::{cargo, exec, step};

pub fn build_rampart(release: bool) -> Result<()> {
    step(format!(
        "building rampart ({})",
        if release { "release" } else { "debug" }
    ));
    let mut cmd = cargo();
    cmd.args(["build", "--package", "proxy-user", "--bin", "rampart"]);
    if release {
        cmd.arg("--release");
    }
    exec(&mut cmd)
}
