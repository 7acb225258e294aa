//! The daemon's main-loop state built in this process from a configuration
//! file, its XDP filter loaded (not attached) from the pin directory the
//! file names: for tests of what the main loop does to the maps (batched
//! auto-bans, restores, reloads) without a process or a namespace.

use std::path::Path;

use proxy_user::{
    config::Config,
    daemon::Daemon,
    filter::Filter,
    http::{Shared, State},
    runtime::StateFile,
};

/// The daemon for `config` (a file, re-read by [`Daemon::reload`]), as it
/// starts: what the pinned maps and the state file hold restored. Needs a
/// Tokio runtime entered: kicks are spawned on it.
pub fn daemon(config: &Path) -> Daemon {
    let cfg = Config::load(config).unwrap_or_else(|e| panic!("{e}"));
    let settings = cfg.filter.clone().expect("a [filter] section");
    let runtime = StateFile::open(&cfg.control.state_file).unwrap();
    let shared = Shared::new(State::build(cfg.into(), None));
    let gate = shared.load().gate.clone();
    gate.configure(Some(&settings));
    let filter = Filter::load(&settings).unwrap_or_else(|e| panic!("loading the filter: {e:?}"));
    let mut daemon = Daemon::new(Some(config.to_path_buf()), Some(filter), shared, runtime);
    daemon
        .restore()
        .unwrap_or_else(|e| panic!("restoring: {e:#}"));
    daemon
}
