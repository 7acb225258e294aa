//! Turns the `[filter]` settings into the value of the kernel's `config` map.

use proxy_common::{
    config::{self as kcfg, FilterConfig},
    gcra,
};

use crate::config::FilterSettings;

/// The `config` map value for `settings`, without the `FLAG_HAS_*` hints
/// and range probes (those describe map contents and are kept by [`super::FilterMaps`]).
pub fn kernel_config(settings: &FilterSettings) -> FilterConfig {
    let (pps_interval_ns, pps_tolerance_ns) = settings
        .pps
        .map_or((0, 0), |l| gcra::params(l.rate, l.burst));
    let (syn_interval_ns, syn_tolerance_ns) = settings
        .syn
        .map_or((0, 0), |l| gcra::params(l.rate, l.burst));
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
    }
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
