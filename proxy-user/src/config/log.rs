//! `[log]`: the daemon's log level, and how many records per second the XDP
//! program may write into it.

use super::{ConfigError, error::Locator, file::FileLog};
use crate::logging::Level;

/// Most records per second `xdp_rate` allows.
pub const MAX_XDP_RATE: i64 = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// The level of every target (`RUST_LOG`, when set, wins at start;
    /// `rampart log level` wins at run time).
    pub level: Level,
    /// Records per second (and burst) the XDP program may write, across
    /// CPUs; past it, records are counted as suppressed. 0: none at all.
    pub xdp_rate: u32,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: Level::Info,
            xdp_rate: 5,
        }
    }
}

pub(super) fn log(loc: &Locator, l: Option<FileLog>) -> Result<LogSettings, ConfigError> {
    let mut out = LogSettings::default();
    let Some(l) = l else { return Ok(out) };
    if let Some(level) = l.level {
        out.level = level
            .get_ref()
            .parse()
            .map_err(|e: String| loc.error(level.span(), format!("level: {e}")))?;
    }
    if let Some(rate) = l.xdp_rate {
        let n = *rate.get_ref();
        if !(0..=MAX_XDP_RATE).contains(&n) {
            return Err(loc.error(
                rate.span(),
                format!("xdp_rate: expected records per second, 0 to {MAX_XDP_RATE}"),
            ));
        }
        out.xdp_rate = n as u32;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::{config::Config, logging::Level};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, "t.toml".as_ref()).map_err(|e| e.to_string())
    }

    #[test]
    fn level_and_xdp_rate_are_read_and_checked() {
        let c = parse("[log]\nlevel = \"warn\"\nxdp_rate = 0\n").unwrap();
        assert_eq!(c.log.level, Level::Warn);
        assert_eq!(c.log.xdp_rate, 0);
        let c = parse("").unwrap();
        assert_eq!((c.log.level, c.log.xdp_rate), (Level::Info, 5));
        let e = parse("[log]\nlevel = \"loud\"\n").unwrap_err();
        assert!(
            e.contains("t.toml:2:9") && e.contains("unknown level `loud`"),
            "{e}"
        );
        let e = parse("[log]\nxdp_rate = 10001\n").unwrap_err();
        assert!(e.contains("0 to 10000"), "{e}");
        assert!(parse("[log]\nxdp_rate = -1\n").is_err());
        assert!(parse("[log]\nlevle = \"info\"\n").is_err());
    }
}
