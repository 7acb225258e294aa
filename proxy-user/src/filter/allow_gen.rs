//! The allowlist generation (`FilterConfig::allow_gen`): how the program
//! skips the allowlist lookup for sources it already knows.
//!
//! A source reaches the per-source LRU only after its address was looked
//! up in the allowlist and not found. Its entry (and its limited-cache
//! slot) records the generation that lookup was made under, and while that
//! is still the config's generation the program trusts it instead of
//! looking the address up again. So the generation moves on after every
//! allowlist change, in the config write that follows the change, never
//! before it: a packet that read the old generation stamps its source
//! with a generation that is no longer current, and the source's next
//! packet looks the allowlist up again. An address added to the allowlist
//! therefore passes from the first packet after the config write, with no
//! LRU entry to purge.
//!
//! An IPv6 source is a prefix (`ipv6_prefix`): when an allowlist entry is
//! longer than that prefix, one address of a source may be allowlisted and
//! another not, so no entry can vouch for every address of its source;
//! `FLAG_ALLOW_FINER_V6` then makes the program look every IPv6 packet up
//! first, as it did before generations.

use proxy_common::config::{self as kcfg, FilterConfig};

use super::{FilterMaps, maps::random_seed};

impl FilterMaps {
    /// Sets `value`'s allowlist generation and `FLAG_ALLOW_FINER_V6` for a
    /// config write replacing `installed`: moved on (and the flag
    /// recomputed) when the allowlist changed since the last move, when
    /// the IPv6 source prefix changes, and on a handle's first write; else
    /// kept. A config map without a generation gets a random one, so that
    /// entries stamped under an older config map are not trusted.
    pub(super) fn allow_generation(&mut self, installed: &FilterConfig, value: &mut FilterConfig) {
        let moves = self.allow_changed
            || installed.allow_gen == 0
            || value.v6_prefix_len != installed.v6_prefix_len;
        let finer = if moves {
            let prefix = value.v6_prefix_len;
            self.allow_v6
                .keys()
                // An entry that cannot be read counts as finer: the flag
                // only costs lookups.
                .any(|k| k.map_or(true, |k| k.prefix_len() > prefix))
        } else {
            installed.has(kcfg::FLAG_ALLOW_FINER_V6)
        };
        if finer {
            value.flags |= kcfg::FLAG_ALLOW_FINER_V6;
        } else {
            value.flags &= !kcfg::FLAG_ALLOW_FINER_V6;
        }
        value.allow_gen = match installed.allow_gen {
            _ if !moves => installed.allow_gen,
            0 | u64::MAX => random_seed(),
            g => g + 1,
        };
        self.allow_changed = false;
    }
}
