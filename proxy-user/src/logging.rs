//! The process's logger: env_logger's format, with a level that can change
//! while the daemon runs (`rampart log level`, `[log] level` on reload).
//!
//! ```text
//! RUST_LOG set?      yes -> its filter, until a level is set at run time
//!                    no  -> "info", then the configuration's `[log] level`
//! set_level(Some(l)) every target at level l (the CLI, or [log] level)
//! set_level(None)    back to RUST_LOG's filter
//! ```
//!
//! The XDP program's records arrive through the same logger with target
//! `rampart::xdp` (see `filter::records`); [`level_for`] tells the daemon
//! which of them are wanted, so the program skips the others before they
//! cost anything.

use std::sync::{
    OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use log::{LevelFilter, Log, Metadata, Record};
use serde::{Deserialize, Serialize};

/// A level as the configuration, the CLI and the control protocol spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Off,
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    pub fn filter(self) -> LevelFilter {
        match self {
            Level::Off => LevelFilter::Off,
            Level::Error => LevelFilter::Error,
            Level::Warn => LevelFilter::Warn,
            Level::Info => LevelFilter::Info,
            Level::Debug => LevelFilter::Debug,
            Level::Trace => LevelFilter::Trace,
        }
    }

    pub fn of(filter: LevelFilter) -> Level {
        Level::ALL[filter as usize]
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                format!("unknown level `{s}`: expected off, error, warn, info, debug or trace")
            })
    }
}

/// `Logger::level` when no level was set at run time: RUST_LOG's filter decides.
const FOLLOW_ENV: usize = usize::MAX;

struct Logger {
    /// RUST_LOG's filter (default "info"); only its filter is used.
    env: env_logger::Logger,
    /// Writes every record it is given, in env_logger's format.
    out: env_logger::Logger,
    /// A `LevelFilter` as usize, or [`FOLLOW_ENV`].
    level: AtomicUsize,
    /// Whether RUST_LOG was set when the process started.
    from_env: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl Logger {
    /// A logger with RUST_LOG's value `spec` (`None`: unset, "info").
    fn new(spec: Option<&str>) -> Logger {
        Logger {
            env: env_logger::Builder::new()
                .parse_filters(spec.unwrap_or("info"))
                .build(),
            out: env_logger::Builder::from_env(env_logger::Env::default())
                .filter_level(LevelFilter::Trace)
                .build(),
            level: AtomicUsize::new(FOLLOW_ENV),
            from_env: spec.is_some(),
        }
    }

    fn set_level(&self, level: Option<Level>) -> LevelFilter {
        match level {
            Some(l) => {
                self.level.store(l.filter() as usize, Ordering::Relaxed);
                l.filter()
            }
            None => {
                self.level.store(FOLLOW_ENV, Ordering::Relaxed);
                self.env.filter()
            }
        }
    }

    fn level_for(&self, target: &str) -> Level {
        Level::ALL
            .into_iter()
            .rev()
            .find(|l| match l.filter().to_level() {
                Some(level) => {
                    self.enabled(&Metadata::builder().level(level).target(target).build())
                }
                None => true,
            })
            .unwrap_or(Level::Off)
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        match self.level.load(Ordering::Relaxed) {
            FOLLOW_ENV => self.env.enabled(metadata),
            level => metadata.level() as usize <= level,
        }
    }

    fn log(&self, record: &Record<'_>) {
        // aya-log hands records to the logger directly, past `log`'s own
        // max-level check, so the level is checked here for every record.
        if self.enabled(record.metadata()) {
            self.out.log(record);
        }
    }

    fn flush(&self) {
        self.out.flush();
    }
}

/// Installs the logger; called once, first thing in `main`.
pub fn init() {
    let spec = std::env::var(env_logger::DEFAULT_FILTER_ENV).ok();
    let logger = LOGGER.get_or_init(|| Logger::new(spec.as_deref()));
    log::set_max_level(logger.env.filter());
    if log::set_logger(logger).is_err() {
        eprintln!("rampart: a logger was already installed");
    }
}

/// Whether RUST_LOG chose the filter at start (it then wins over `[log] level`).
pub fn from_env() -> bool {
    LOGGER.get().is_some_and(|l| l.from_env)
}

/// Every target at `level` from now on; `None`: RUST_LOG's filter again.
pub fn set_level(level: Option<Level>) {
    if let Some(logger) = LOGGER.get() {
        log::set_max_level(logger.set_level(level));
    }
}

/// The most verbose level that records of `target` get through now.
pub fn level_for(target: &str) -> Level {
    LOGGER.get().map_or(Level::Off, |l| l.level_for(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_names_and_filters() {
        for l in Level::ALL {
            assert_eq!(l.name().parse::<Level>(), Ok(l));
            assert_eq!(Level::of(l.filter()), l);
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.name()));
        }
        let e = "verbose".parse::<Level>().unwrap_err();
        assert!(e.contains("expected off, error"), "{e}");
    }

    #[test]
    fn a_level_set_at_run_time_replaces_the_env_filter_until_cleared() {
        let xdp = proxy_common::log::TARGET;
        let logger = Logger::new(Some("warn,rampart::xdp=debug"));
        assert!(logger.from_env);
        assert_eq!(logger.level_for(xdp), Level::Debug);
        assert_eq!(logger.level_for("proxy_user::daemon"), Level::Warn);
        assert_eq!(logger.set_level(Some(Level::Error)), LevelFilter::Error);
        assert_eq!(logger.level_for(xdp), Level::Error);
        assert_eq!(logger.level_for("proxy_user::daemon"), Level::Error);
        assert_eq!(logger.set_level(Some(Level::Off)), LevelFilter::Off);
        assert_eq!(logger.level_for(xdp), Level::Off);
        // Back to RUST_LOG.
        assert_eq!(logger.set_level(None), LevelFilter::Debug);
        assert_eq!(logger.level_for(xdp), Level::Debug);
        let default = Logger::new(None);
        assert!(!default.from_env);
        assert_eq!(default.level_for(xdp), Level::Info);
        default.set_level(Some(Level::Trace));
        assert_eq!(default.level_for("anything"), Level::Trace);
    }
}
