//! Turns the `[filter]` settings into the value of the kernel's `config` map.

use proxy_common::{
    config::{self as kcfg, FilterConfig},
    gcra,
};

use crate::config::{FilterSettings, RateLimit};

/// The `config` map value for `settings`, without the `FLAG_HAS_*` hints
/// and range probes (those describe map contents and are kept by [`super::FilterMaps`]).
pub fn kernel_config(settings: &FilterSettings) -> FilterConfig {
    kernel_config_with(settings, settings.pps, settings.syn)
}

/// As [`kernel_config`], with other `pps` and `syn` limits in force
/// (`rampart limit set` over the configuration's).
pub fn kernel_config_with(
    settings: &FilterSettings,
    pps: Option<RateLimit>,
    syn: Option<RateLimit>,
) -> FilterConfig {
    let (pps_interval_ns, pps_tolerance_ns) = pps.map_or((0, 0), |l| gcra::params(l.rate, l.burst));
    let (syn_interval_ns, syn_tolerance_ns) = syn.map_or((0, 0), |l| gcra::params(l.rate, l.burst));
    let mut flags = 0;
    if settings.enabled {
        flags |= kcfg::FLAG_ENABLED;
    }
    if settings.track_sources {
        flags |= kcfg::FLAG_TRACK_SOURCES;
    }
    if settings.pass_unparsed {
        flags |= kcfg::FLAG_PASS_UNPARSED;
    }
    FilterConfig {
        pps_interval_ns,
        pps_tolerance_ns,
        syn_interval_ns,
        syn_tolerance_ns,
        v6_mask: kcfg::v6_mask(settings.ipv6_prefix as u32),
        v6_prefix_len: settings.ipv6_prefix as u32,
        flags,
        // Filled in by FilterMaps from the installed ranges.
        probes_v4: Default::default(),
        probes_v6: Default::default(),
        index_mask_v4: 0,
        index_mask_v6: 0,
        range_mask_v4: 0,
        range_mask_v6: 0,
        // Filled in by FilterMaps::write_config.
        admit_seed: 0,
        ban_mask_v4: 0,
        ban_mask_v6: 0,
        // Kept or moved on by FilterMaps::write_config.
        allow_gen: 0,
    }
}

/// The `FLAG_*_COARSE` bits for `config`'s limits, given the coarse clock's
/// tick: a limit whose tolerance spans `COARSE_TICKS` ticks is decided on
/// the coarse clock alone (docs/kernel-tier.md, "Clocks").
pub fn clock_flags(config: &FilterConfig, tick_ns: u64) -> u32 {
    let span = tick_ns.saturating_mul(kcfg::COARSE_TICKS);
    let mut flags = 0;
    if config.pps_interval_ns != 0 && config.pps_tolerance_ns >= span {
        flags |= kcfg::FLAG_PPS_COARSE;
    }
    if config.syn_interval_ns != 0 && config.syn_tolerance_ns >= span {
        flags |= kcfg::FLAG_SYN_COARSE;
    }
    flags
}

/// Rate (per second) and burst that a GCRA interval and tolerance encode, for display.
pub fn rate_of(interval_ns: u64, tolerance_ns: u64) -> Option<(u64, u64)> {
    (interval_ns != 0).then(|| (1_000_000_000 / interval_ns, tolerance_ns / interval_ns + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RateLimit};

    #[test]
    fn a_limit_is_decided_on_the_coarse_clock_when_its_burst_spans_four_ticks() {
        let tick = 4_000_000;
        let config = |pps: (u64, u64), syn: (u64, u64)| {
            let (pps_interval_ns, pps_tolerance_ns) = gcra::params(pps.0, pps.1);
            let (syn_interval_ns, syn_tolerance_ns) = gcra::params(syn.0, syn.1);
            FilterConfig {
                pps_interval_ns,
                pps_tolerance_ns,
                syn_interval_ns,
                syn_tolerance_ns,
                ..Default::default()
            }
        };
        // The documented example limits: bursts of two seconds.
        assert_eq!(
            clock_flags(&config((20_000, 40_000), (100, 200)), tick),
            kcfg::FLAG_PPS_COARSE | kcfg::FLAG_SYN_COARSE
        );
        // 1000/s with a burst of 17: tolerance 16 ms, exactly four ticks.
        assert_eq!(
            clock_flags(&config((1000, 17), (1, 1)), tick),
            kcfg::FLAG_PPS_COARSE
        );
        // 15 ms, under four ticks; a burst of one; a million a second with
        // a burst of 1,000 (1 ms, the case a coarse clock alone gets wrong).
        assert_eq!(clock_flags(&config((1000, 16), (1, 1)), tick), 0);
        assert_eq!(clock_flags(&config((1_000_000, 1_000), (10, 1)), tick), 0);
        // No limit: no flag, whatever the tick.
        assert_eq!(clock_flags(&config((0, 0), (0, 0)), 0), 0);
        // A longer tick (HZ=100) needs a longer burst.
        assert_eq!(clock_flags(&config((1000, 17), (1, 1)), 10_000_000), 0);
    }

    #[test]
    fn limits_become_gcra_parameters() {
        let mut s = Config::parse(crate::config::DEFAULT_TOML, "x".as_ref())
            .unwrap()
            .filter
            .unwrap();
        s.pps = Some(RateLimit {
            rate: 1000,
            burst: 50,
        });
        s.syn = None;
        let k = kernel_config(&s);
        assert_eq!(k.pps_interval_ns, 1_000_000);
        assert_eq!(k.pps_tolerance_ns, 49_000_000);
        assert_eq!(k.syn_interval_ns, 0);
        assert_eq!(
            rate_of(k.pps_interval_ns, k.pps_tolerance_ns),
            Some((1000, 50))
        );
        assert!(k.has(kcfg::FLAG_ENABLED));
        assert_eq!(k.v6_prefix_len, 64);
    }
}
