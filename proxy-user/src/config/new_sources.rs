//! `[filter.new_sources]`: how many sources the kernel tier has never seen
//! it admits per second, all CPUs together, and how long attack mode lasts
//! (docs/kernel-tier.md, "New sources: a budget, and attack mode").

use std::time::Duration;

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileNewSources, int_in, units};

/// Attack mode lasts this long after the budget was last found spent.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(10);
/// The highest rate and burst accepted.
const MAX: i64 = 100_000_000;

/// The new-source budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewSources {
    /// New sources admitted per second; 0: no budget (every new source is
    /// admitted, as before the budget existed).
    pub rate: u32,
    /// Back-to-back new sources admitted (at least 1 when `rate` is set).
    pub burst: u32,
    /// Attack mode lasts this long after the budget was last spent.
    pub hold: Duration,
}

impl NewSources {
    /// The default for a per-source LRU of `sources` entries: that many new
    /// sources a second, with a burst of as many. Real traffic rarely
    /// brings a whole LRU of sources it has never sent from within one
    /// second (that would evict every known source each second anyway),
    /// while a spoofed flood at line rate brings millions: it is cut to
    /// what the LRU can hold.
    pub const fn for_sources(sources: u32) -> NewSources {
        NewSources {
            rate: sources,
            burst: sources,
            hold: DEFAULT_HOLD,
        }
    }

    /// No budget.
    pub const fn off() -> NewSources {
        NewSources {
            rate: 0,
            burst: 0,
            hold: DEFAULT_HOLD,
        }
    }
}

pub(super) fn new_sources(
    loc: &Locator,
    f: Option<Spanned<FileNewSources>>,
    sources: u32,
) -> Result<NewSources, ConfigError> {
    let mut out = NewSources::for_sources(sources);
    let Some(f) = f else {
        return Ok(out);
    };
    let f = f.into_inner();
    if let Some(r) = f.rate {
        out.rate = int_in(
            loc,
            &r,
            0,
            MAX,
            "new_sources.rate (new sources per second, 0: no budget)",
        )? as u32;
        // A rate without a burst: a second's worth.
        out.burst = out.rate;
    }
    if let Some(b) = f.burst {
        out.burst = int_in(loc, &b, 1, MAX, "new_sources.burst")? as u32;
    }
    if out.rate == 0 {
        out.burst = 0;
    }
    if let Some(h) = f.hold {
        let d = units::duration_at_most(h.get_ref(), units::DAY)
            .map_err(|e| loc.error(h.span(), format!("new_sources.hold: {}", e.0)))?;
        if d < Duration::from_secs(1) {
            return Err(loc.error(h.span(), "new_sources.hold: expected at least 1s"));
        }
        out.hold = d;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("rampart.toml"))
    }

    fn budget(text: &str) -> NewSources {
        parse(text).unwrap().filter.unwrap().new_sources
    }

    #[test]
    fn the_default_follows_the_lru_size() {
        assert_eq!(budget("[filter]\n"), NewSources::for_sources(65_536));
        let b = budget("[filter.maps]\nsources = 1024\n");
        assert_eq!((b.rate, b.burst, b.hold), (1024, 1024, DEFAULT_HOLD));
    }

    #[test]
    fn rate_burst_and_hold_are_read_and_zero_turns_it_off() {
        let b = budget("[filter.new_sources]\nrate = 500\nburst = 50\nhold = \"3s\"\n");
        assert_eq!((b.rate, b.burst, b.hold), (500, 50, Duration::from_secs(3)));
        let b = budget("[filter]\nnew_sources = { rate = 200 }\n");
        assert_eq!((b.rate, b.burst), (200, 200), "a second's worth of burst");
        let b = budget("[filter.new_sources]\nrate = 0\nburst = 9\n");
        assert_eq!((b.rate, b.burst), (0, 0));
    }

    #[test]
    fn bad_values_name_their_place() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            err("[filter.new_sources]\nrate = -1\n"),
            "rampart.toml:2:8: new_sources.rate (new sources per second, 0: no budget) must be between 0 and 100000000, got -1"
        );
        assert_eq!(
            err("[filter.new_sources]\nrate = 5\nburst = 0\n"),
            "rampart.toml:3:9: new_sources.burst must be between 1 and 100000000, got 0"
        );
        assert_eq!(
            err("[filter.new_sources]\nhold = \"10ms\"\n"),
            "rampart.toml:2:8: new_sources.hold: expected at least 1s"
        );
        assert!(err("[filter.new_sources]\nper_port = 1\n").contains("unknown field"));
    }
}
