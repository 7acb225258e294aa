//! `[filter.syn_cookies]`: SYN cookies answered in XDP (docs/kernel-tier.md,
//! "SYN cookies").

use toml::Spanned;

use super::{ConfigError, Listener, error::Locator, file::FileSynCookies, int_in};

/// The SYN rate (per second, all CPUs) above which `auto` answers with cookies.
pub const DEFAULT_THRESHOLD: u32 = 1000;
/// SYN-ACKs per second that cookies may send (all CPUs): about 60 Mbit/s of
/// answers to spoofed sources at most.
pub const DEFAULT_SYNACK_RATE: u32 = 100_000;

/// When the XDP program answers SYNs to protected ports itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SynCookieMode {
    /// Never: every SYN reaches the kernel (as before SYN cookies existed).
    Off,
    /// While the SYN rate to protected ports is over `threshold`.
    Auto,
    /// Always.
    On,
}

impl SynCookieMode {
    pub fn name(self) -> &'static str {
        match self {
            SynCookieMode::Off => "off",
            SynCookieMode::Auto => "auto",
            SynCookieMode::On => "on",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynCookies {
    pub mode: SynCookieMode,
    /// Protected TCP ports, sorted. Unless `ports` is given, the ports of
    /// the `[[listener]]` binds ([`SynCookies::resolve_ports`]).
    pub ports: Vec<u16>,
    /// `ports` was not given: it follows the listeners.
    pub ports_from_listeners: bool,
    /// `auto`: SYNs per second to protected ports (all CPUs together, after
    /// the per-source limits) that the kernel takes before cookies start.
    pub threshold: u32,
    /// Cookies also on veth interfaces in native mode: the operator says
    /// the peer takes XDP_TX frames (it runs an XDP program or has GRO on).
    pub on_veth: bool,
    /// SYN-ACKs per second cookies may send, all CPUs together; past it
    /// SYNs that would get a cookie are dropped (the backscatter cap).
    /// 0: no cap.
    pub synack_rate: u32,
}

impl Default for SynCookies {
    fn default() -> Self {
        SynCookies {
            mode: SynCookieMode::Auto,
            ports: Vec::new(),
            ports_from_listeners: true,
            threshold: DEFAULT_THRESHOLD,
            on_veth: false,
            synack_rate: DEFAULT_SYNACK_RATE,
        }
    }
}

impl SynCookies {
    /// Fills in the listeners' ports when `ports` was not given.
    pub fn resolve_ports(&mut self, listeners: &[Listener]) {
        if self.ports_from_listeners {
            self.ports = listeners
                .iter()
                .map(|l| l.bind.port())
                .filter(|&p| p != 0)
                .collect();
            self.ports.sort_unstable();
            self.ports.dedup();
        }
    }
}

pub(super) fn syn_cookies(
    loc: &Locator,
    f: Option<Spanned<FileSynCookies>>,
) -> Result<SynCookies, ConfigError> {
    let mut out = SynCookies::default();
    let Some(f) = f else {
        return Ok(out);
    };
    let f = f.into_inner();
    if let Some(m) = f.mode {
        out.mode = match m.get_ref().as_str() {
            "auto" => SynCookieMode::Auto,
            "on" => SynCookieMode::On,
            "off" => SynCookieMode::Off,
            other => {
                return Err(loc.error(
                    m.span(),
                    format!("syn_cookies.mode `{other}`: expected \"auto\", \"on\" or \"off\""),
                ));
            }
        };
    }
    if let Some(ports) = f.ports {
        if ports.get_ref().is_empty() {
            return Err(loc.error(
                ports.span(),
                "syn_cookies.ports is empty: name at least one port, or set mode = \"off\"",
            ));
        }
        let mut list = Vec::new();
        for p in ports.into_inner() {
            list.push(int_in(loc, &p, 1, 65535, "syn_cookies.ports entry")? as u16);
        }
        list.sort_unstable();
        list.dedup();
        out.ports = list;
        out.ports_from_listeners = false;
    }
    out.on_veth = f.on_veth.unwrap_or(false);
    if let Some(t) = f.threshold {
        out.threshold = int_in(
            loc,
            &t,
            1,
            100_000_000,
            "syn_cookies.threshold (SYNs per second)",
        )? as u32;
    }
    if let Some(r) = f.synack_rate {
        out.synack_rate = int_in(
            loc,
            &r,
            0,
            100_000_000,
            "syn_cookies.synack_rate (SYN-ACKs per second, 0: no cap)",
        )? as u32;
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

    fn cookies(text: &str) -> SynCookies {
        parse(text).unwrap().filter.unwrap().syn_cookies
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn by_default_auto_on_the_listeners_ports() {
        let c = cookies(
            "[filter]\n[[listener]]\nbind = \"0.0.0.0:8443\"\n[[listener]]\nbind = \"[::]:80\"\n\
             [[listener]]\nbind = \"127.0.0.1:80\"\n",
        );
        assert_eq!(c.mode, SynCookieMode::Auto);
        assert_eq!(c.ports, [80, 8443]);
        assert!(c.ports_from_listeners);
        assert_eq!(c.threshold, DEFAULT_THRESHOLD);
        assert_eq!(c.synack_rate, DEFAULT_SYNACK_RATE);
        assert!(cookies("[filter]\n").ports.is_empty());
    }

    #[test]
    fn explicit_settings() {
        let c = cookies(
            "[filter.syn_cookies]\nmode = \"on\"\nports = [443, 22, 443]\nthreshold = 50\non_veth = true\nsynack_rate = 0\n\
             [[listener]]\nbind = \"0.0.0.0:8080\"\n",
        );
        assert_eq!(c.mode, SynCookieMode::On);
        assert_eq!(c.ports, [22, 443], "sorted, once each, not the listener's");
        assert_eq!(c.threshold, 50);
        assert_eq!(c.synack_rate, 0, "no cap");
        assert!(c.on_veth);
        assert!(!cookies("[filter]\n").on_veth);
        assert_eq!(
            cookies("[filter]\nsyn_cookies = { mode = \"off\" }\n").mode,
            SynCookieMode::Off
        );
    }

    #[test]
    fn bad_values_name_their_place() {
        assert_eq!(
            err("[filter]\n[filter.syn_cookies]\nmode = \"always\"\n"),
            "rampart.toml:3:8: syn_cookies.mode `always`: expected \"auto\", \"on\" or \"off\""
        );
        assert_eq!(
            err("[filter.syn_cookies]\nports = [443, 70000]\n"),
            "rampart.toml:2:15: syn_cookies.ports entry must be between 1 and 65535, got 70000"
        );
        assert!(
            err("[filter.syn_cookies]\nports = []\n")
                .starts_with("rampart.toml:2:9: syn_cookies.ports is empty")
        );
        assert_eq!(
            err("[filter.syn_cookies]\nthreshold = 0\n"),
            "rampart.toml:2:13: syn_cookies.threshold (SYNs per second) must be between 1 and 100000000, got 0"
        );
        assert_eq!(
            err("[filter.syn_cookies]\nsynack_rate = -1\n"),
            "rampart.toml:2:15: syn_cookies.synack_rate (SYN-ACKs per second, 0: no cap) must be between 0 and 100000000, got -1"
        );
        assert!(err("[filter.syn_cookies]\nport = [443]\n").contains("unknown field `port`"));
    }
}
