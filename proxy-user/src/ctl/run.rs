//! `rampart run`: the daemon's lifecycle, told in order: validate the config,
//! load and attach the filter, serve until a signal, then detach.
//!
//! Signals: SIGINT and SIGTERM stop (the program is detached; the pinned maps
//! and their bans and counters stay for the next start); SIGHUP re-reads the
//! configuration and, if it is valid, reconciles the maps in place (if not,
//! the running settings stay and the error is logged).

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result, bail};
use log::{error, info, warn};

use crate::{
    config::Config,
    filter::{Filter, mode_name},
};

/// How often expired bans are swept while idle.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub fn run(cfg: &Config, source: Option<PathBuf>) -> Result<()> {
    let Some(settings) = &cfg.filter else {
        bail!("the configuration has no [filter] section: nothing to run");
    };
    // Block the signals before any thread exists so every thread inherits the mask.
    let signals = Signals::block()?;
    let mut filter = Filter::load(settings).context("loading the XDP filter")?;
    for iface in &settings.interfaces {
        filter.attach(iface, settings.mode)?;
    }
    let attached: Vec<String> = filter
        .attached()
        .iter()
        .map(|(i, m)| format!("{i} ({})", mode_name(*m)))
        .collect();
    info!(
        "rampart running: XDP on [{}], maps pinned in {}",
        attached.join(", "),
        settings.pin_dir.display()
    );
    let mut current = settings.clone();
    loop {
        match signals.wait(SWEEP_EVERY) {
            Some(libc::SIGINT) | Some(libc::SIGTERM) => break,
            Some(libc::SIGHUP) => match reload(source.as_deref()) {
                Ok(next)
                    if next.interfaces != current.interfaces || next.pin_dir != current.pin_dir =>
                {
                    warn!("reload: interfaces or pin_dir changed; restart rampart to apply them");
                    filter.sync(&next)?;
                    current = next;
                }
                Ok(next) => {
                    filter.sync(&next)?;
                    info!("reload: configuration applied");
                    current = next;
                }
                Err(e) => error!("reload failed, keeping the running configuration: {e:#}"),
            },
            _ => {
                let swept = filter.maps.sweep_bans()?;
                if swept > 0 {
                    info!("{swept} expired ban(s) removed");
                }
            }
        }
    }
    info!(
        "stopping: detaching XDP; pinned maps stay in {}",
        current.pin_dir.display()
    );
    drop(filter);
    Ok(())
}

fn reload(source: Option<&std::path::Path>) -> Result<crate::config::FilterSettings> {
    let Some(path) = source else {
        bail!("running the built-in configuration; nothing to re-read")
    };
    Config::load(path)?
        .filter
        .context("the new configuration has no [filter] section")
}

/// SIGINT, SIGTERM and SIGHUP, blocked and received synchronously.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> Result<Signals> {
        // SAFETY: plain libc signal-set manipulation on a set we own.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                libc::sigaddset(&mut set, sig);
            }
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                bail!("blocking signals failed");
            }
            Ok(Signals { set })
        }
    }

    /// The next signal, or `None` after `timeout`.
    fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // SAFETY: the set was initialised in `block`; no siginfo is requested.
        let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        (sig > 0).then_some(sig)
    }
}
