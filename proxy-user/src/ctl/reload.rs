//! `rampart reload`: the daemon re-reads its file; an invalid one is
//! reported here (file:line:column) and the running configuration stays.
//! `rampart upgrade`: the daemon hands over to a new binary.

use std::path::Path;

use anyhow::Result;

use super::Output;
use crate::control_socket::{client::call, protocol::Request};

pub fn run(out: &Output, socket: &Path) -> Result<()> {
    let data = call(socket, &Request::Reload)?;
    out.emit(&data, || {
        format!("reload: {}\n", data["applied"].as_str().unwrap_or("done"))
    });
    Ok(())
}

pub fn upgrade(out: &Output, socket: &Path, binary: Option<std::path::PathBuf>) -> Result<()> {
    let binary = match binary {
        Some(b) => b,
        None => std::env::current_exe()?,
    };
    let binary = std::fs::canonicalize(&binary).unwrap_or(binary);
    let data = call(socket, &Request::Upgrade { binary })?;
    out.emit(&data, || {
        format!(
            "upgrade: the new daemon (pid {}) serves; the old one drains and exits\n",
            data["pid"]
        )
    });
    Ok(())
}
