//! Which `Host` the admin listener answers: a browser on the same machine
//! can be pointed at it through a DNS name that resolves to 127.0.0.1 (DNS
//! rebinding), and would then read `/status.json` and `/metrics` as a page
//! of that name. The browser sends that name as `Host`, so only requests
//! naming the listener itself are answered: `localhost`, a loopback
//! address, the listener's own address, or a name in `[admin] allowed_hosts`.
//! Others get 421 Misdirected Request. A request without `Host` (HTTP/1.0
//! tools) is answered: browsers always send one.

use std::net::{IpAddr, SocketAddr};

/// Whether a request with `host` (the header's value, if any) to the
/// listener at `local` is answered.
pub fn allowed(host: Option<&str>, local: SocketAddr, extra: &[String]) -> bool {
    let Some(host) = host else { return true };
    let name = strip_port(host.trim());
    if name.eq_ignore_ascii_case("localhost") || name.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback()
            || ip == local.ip()
            || ip.to_canonical() == local.ip().to_canonical();
    }
    extra.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// `name` from `name:port`, `[v6]` from `[v6]:port`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        // One colon: a port. More: a bare IPv6 address (not valid in Host, but harmless).
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_the_listener_itself() {
        let lo: SocketAddr = "127.0.0.1:9901".parse().unwrap();
        let extra = ["rampart.internal".to_string()];
        for ok in [
            None,
            Some("localhost"),
            Some("LOCALHOST:9901"),
            Some("127.0.0.1:9901"),
            Some("127.0.0.2"),
            Some("[::1]:9901"),
            Some("rampart.internal:9901"),
        ] {
            assert!(allowed(ok, lo, &extra), "{ok:?}");
        }
        for bad in [
            Some("attacker.example"),
            Some("attacker.example:9901"),
            Some("localhost.attacker.example"),
            Some("10.0.0.1:9901"),
            Some(""),
        ] {
            assert!(!allowed(bad, lo, &extra), "{bad:?}");
        }
        let public: SocketAddr = "192.0.2.10:9901".parse().unwrap();
        assert!(allowed(Some("192.0.2.10:9901"), public, &[]));
        assert!(!allowed(Some("192.0.2.11:9901"), public, &[]));
    }
}
