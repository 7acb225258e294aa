//! `[limit.NAME]`: request rate limits per client address, with nginx's
//! `limit_req` semantics.

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileLimitZone, int_in, units::Rate};

#[derive(Clone, Debug, PartialEq)]
pub struct LimitZone {
    pub name: String,
    pub rate: Rate,
    /// Requests allowed above the rate, queued (delayed) or, with `nodelay`, served at once.
    pub burst: u64,
    /// Requests within the burst that are served without delay (nginx
    /// `delay=N`; `nodelay` = the whole burst).
    pub delay_after: u64,
    /// Count what would be limited, but limit nothing.
    pub dry_run: bool,
    /// Status for rejected requests.
    pub status: u16,
    /// Clients tracked; the least recently seen are forgotten beyond this.
    pub max_clients: usize,
    /// Held fleet-wide (`fleet = true`, needs `[fleet]`): every host
    /// decides locally and charges the others' counts, exchanged through
    /// Redis every `[fleet] exchange` (docs/fleet.md).
    pub fleet: bool,
}

pub(super) fn zone(
    loc: &Locator,
    name: &str,
    z: Spanned<FileLimitZone>,
) -> Result<LimitZone, ConfigError> {
    let z = z.into_inner();
    let rate: Rate = z
        .rate
        .get_ref()
        .parse()
        .map_err(|e: super::units::UnitError| loc.error(z.rate.span(), e.0))?;
    let burst = z
        .burst
        .map_or(Ok(0), |b| int_in(loc, &b, 0, 1_000_000, "burst"))? as u64;
    let delay_after = match (z.nodelay.unwrap_or(false), &z.delay) {
        (true, Some(d)) => return Err(loc.error(d.span(), "use either nodelay or delay, not both")),
        (true, None) => burst,
        (false, Some(d)) => int_in(loc, d, 0, burst as i64, "delay (at most burst)")? as u64,
        (false, None) => 0,
    };
    Ok(LimitZone {
        name: name.to_string(),
        rate,
        burst,
        delay_after,
        dry_run: z.dry_run.unwrap_or(false),
        status: z
            .status
            .map_or(Ok(429), |s| int_in(loc, &s, 400, 599, "status"))? as u16,
        max_clients: z.max_clients.map_or(Ok(100_000), |m| {
            int_in(loc, &m, 1, 100_000_000, "max_clients")
        })? as usize,
        fleet: z.fleet.is_some_and(|f| f.into_inner()),
    })
}
