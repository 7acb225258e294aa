//! `rampart reload`: the daemon re-reads its file; an invalid one is
//! reported here (file:line:column) and the running configuration stays.

use std::path::Path;

use anyhow::Result;

use super::Output;
use crate::control::{client::call, protocol::Request};

pub fn run(out: &Output, socket: &Path) -> Result<()> {
    let data = call(socket, &Request::Reload)?;
    out.emit(&data, || {
        format!("reload: {}\n", data["applied"].as_str().unwrap_or("done"))
    });
    Ok(())
}
