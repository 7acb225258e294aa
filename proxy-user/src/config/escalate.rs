//! `[escalate.NAME]`: rules that turn L7 abuse into kernel bans. A route
//! names the rules its responses count toward (`escalate = "NAME"`).

use std::time::Duration;

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileEscalate, int_in, units};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalateRule {
    pub name: String,
    /// Response statuses that count (default: 429).
    pub statuses: Vec<u16>,
    /// More than this many counted responses to one source...
    pub count: u64,
    /// ...within this window...
    pub within: Duration,
    /// ...ban the source in the kernel for this long.
    pub ban: Duration,
    /// Counted fleet-wide (`fleet = true`, needs `[fleet]`): the responses
    /// every host counted add up (docs/fleet.md).
    pub fleet: bool,
}

pub(super) fn rule(
    loc: &Locator,
    name: &str,
    r: Spanned<FileEscalate>,
) -> Result<EscalateRule, ConfigError> {
    let r = r.into_inner();
    let statuses = match r.statuses {
        None => vec![429],
        Some(list) => {
            let mut out = Vec::new();
            for s in list.get_ref() {
                out.push(int_in(loc, s, 100, 599, "statuses")? as u16);
            }
            if out.is_empty() {
                return Err(loc.error(
                    list.span(),
                    format!("[escalate.{name}]: statuses is empty (expected e.g. [429])"),
                ));
            }
            out
        }
    };
    let dur = |v: &Spanned<String>, max| {
        units::duration_at_most(v.get_ref(), max).map_err(|e| loc.error(v.span(), e.0))
    };
    let within = dur(&r.within, units::DAY)?;
    let ban = dur(&r.ban, units::YEAR)?;
    if within.is_zero() {
        return Err(loc.error(r.within.span(), "within: expected a window above zero"));
    }
    if ban.is_zero() {
        return Err(loc.error(r.ban.span(), "ban: expected a duration above zero"));
    }
    Ok(EscalateRule {
        name: name.to_string(),
        statuses,
        count: int_in(loc, &r.count, 1, 1_000_000, "count")? as u64,
        within,
        ban,
        fleet: r.fleet.is_some_and(|f| f.into_inner()),
    })
}
