//! The daemon started in this process from a configuration file
//! ([`Daemon::start`] with [`Tier::Unattached`]): its XDP filter loaded
//! over the pin directory the file names and attached to nothing, so that
//! frames reach the program only through BPF_PROG_TEST_RUN. For tests of
//! what the main loop does to the maps (batched auto-bans, restores,
//! reloads) without a process of its own or a namespace. Every call is a
//! command to the daemon's main loop, as the control socket's are.

use std::path::{Path, PathBuf};

use anyhow::Result;
use proxy_user::{
    config::Config,
    control_socket::protocol::{Reply, Request},
    daemon::{Daemon, Handle, Io, Tier},
    escalate::AutoBan,
    filter::Filter,
    state_file::{Entry, RuntimeState},
};

/// A running daemon and the runtime its main loop runs on; stopped when
/// dropped (the filter, kept pinned, is then free for the next one).
pub struct InProcess {
    runtime: tokio::runtime::Runtime,
    handle: Option<Handle>,
    state_file: PathBuf,
}

/// Starts the daemon for `config` (a file, re-read by [`InProcess::reload`]):
/// what the pinned maps and the state file hold is restored once it returns.
pub fn daemon(config: &Path) -> InProcess {
    let cfg = Config::load(config).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.filter.is_some(), "a [filter] section");
    let state_file = cfg.control.state_file.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let io = Io {
        tier: Tier::Unattached,
        ..Io::bind(&cfg, Some(config.to_path_buf())).unwrap_or_else(|e| panic!("{e:#}"))
    };
    let handle = {
        let _entered = runtime.enter();
        Daemon::start(cfg, io).unwrap_or_else(|e| panic!("starting: {e:#}"))
    };
    InProcess {
        runtime,
        handle: Some(handle),
        state_file,
    }
}

impl InProcess {
    fn handle(&self) -> &Handle {
        self.handle.as_ref().expect("running")
    }

    /// A control request, as `rampart` would send it.
    pub fn command(&self, request: Request) -> Reply {
        self.runtime.block_on(self.handle().command(request))
    }

    /// `rampart reload`: the file re-read; what was applied, or the error.
    pub fn reload(&self) -> std::result::Result<String, String> {
        let reply = self.command(Request::Reload);
        match reply.error {
            Some(e) => Err(e),
            None => Ok(reply.data["applied"]
                .as_str()
                .unwrap_or_default()
                .to_string()),
        }
    }

    /// Escalation reports carried out as one batch.
    pub fn auto_bans(&self, reports: Vec<AutoBan>) -> Result<()> {
        self.runtime.block_on(self.handle().auto_bans(reports))
    }

    /// `look` at the filter as the daemon holds it (its program, its maps).
    pub fn with_filter<R: Send + 'static>(
        &self,
        look: impl FnOnce(&Filter) -> R + Send + 'static,
    ) -> R {
        self.runtime
            .block_on(self.handle().with_filter(look))
            .expect("the daemon answers")
            .expect("the XDP filter runs")
    }

    /// The state file's entries as last written.
    pub fn state_file_entries(&self) -> Vec<Entry> {
        let state = RuntimeState::read(&self.state_file).expect("a state file");
        state.entries.iter().cloned().collect()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take()
            && let Err(e) = self.runtime.block_on(handle.shutdown(None))
        {
            eprintln!("stopping the in-process daemon: {e:#}");
        }
    }
}
