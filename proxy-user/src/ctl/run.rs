//! `rampart run`: starts the runtime and hands over to [`crate::daemon`].

use std::path::PathBuf;

use anyhow::Result;

use crate::config::Config;

pub fn run(cfg: &Config, source: Option<PathBuf>) -> Result<()> {
    crate::daemon::unblock_signals();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(crate::daemon::run(cfg.clone(), source))
}
