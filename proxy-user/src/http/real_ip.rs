//! The client's real address behind a trusted proxy (nginx's realip
//! module). When the peer is in `trusted_proxies`, the address its
//! `real_ip_header` names becomes the client for everything keyed on one:
//! limits, escalation, the access log, `X-Forwarded-For`/`X-Real-IP` to
//! the upstream, and the L7 refusal of banned clients ([`refused`]).
//!
//! For a list header (`X-Forwarded-For`, `Forwarded`) the walk starts at
//! the right, the hop the trusted peer itself added: with
//! `real_ip_recursive` it goes left past every trusted address and stops at
//! the first untrusted one (the client; everything further left is the
//! client's own word). An entry that is not an address stops the walk at
//! the last good one, as nginx's does; none at all keeps the peer.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hyper::{HeaderMap, header};

use super::ConnInfo;
use crate::config::{RealIp, RealIpHeader, real_ip_unmapped as unmapped};

/// `conn` with the client a trusted peer names, and the peer kept in `via`.
/// Unchanged when the peer is not trusted or names no valid address.
pub fn apply(cfg: &RealIp, conn: ConnInfo, headers: &HeaderMap) -> ConnInfo {
    let peer = conn.client.ip();
    if !cfg.trusts(peer) {
        return conn;
    }
    match client(cfg, headers) {
        Some(ip) => ConnInfo {
            client: SocketAddr::new(ip, 0),
            via: conn.via.or(Some(peer)),
            ..conn
        },
        None => conn,
    }
}

/// The client the headers name (the peer is trusted).
fn client(cfg: &RealIp, headers: &HeaderMap) -> Option<IpAddr> {
    match &cfg.header {
        RealIpHeader::XForwardedFor => {
            let items = headers
                .get_all(super::headers::X_FORWARDED_FOR.clone())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','));
            walk(cfg, items)
        }
        RealIpHeader::Forwarded => {
            let items = headers
                .get_all(header::FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(forwarded_for);
            walk(cfg, items)
        }
        RealIpHeader::Named(name) => {
            let v = headers.get(name)?.to_str().ok()?;
            address(v).map(unmapped)
        }
    }
}

/// The right-most address, or with `recursive` the right-most untrusted one.
fn walk<'a>(cfg: &RealIp, items: impl Iterator<Item = &'a str>) -> Option<IpAddr> {
    let items: Vec<&str> = items.map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut found = None;
    for item in items.iter().rev() {
        let Some(ip) = address(item).map(unmapped) else {
            break;
        };
        found = Some(ip);
        if !cfg.recursive || !cfg.trusts(ip) {
            break;
        }
    }
    found
}

/// The `for=` of one `Forwarded` element (`""` when it has none).
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, v)| v.trim().trim_matches('"'))
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:4711`; anything else (`unknown`, `_hidden`) is none.
fn address(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the L7 tier refuses this request: its client came through a
/// trusted proxy (or a PROXY protocol header) and is banned or blocklisted.
/// The kernel tier cannot: it sees only the proxy's packets, and never
/// bans a trusted proxy.
pub fn refused(gate: &crate::gate::Gate, conn: &ConnInfo) -> bool {
    conn.via.is_some() && gate.refuses(conn.client.ip())
}

#[cfg(test)]
mod tests {
    use hyper::header::{HeaderName, HeaderValue};

    use super::*;

    fn cfg(header: RealIpHeader, recursive: bool) -> RealIp {
        RealIp {
            trusted: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            header,
            recursive,
        }
    }

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo {
            client: SocketAddr::new(peer.parse().unwrap(), 5555),
            https: false,
            redirect_https: None,
            via: None,
            server_port: 80,
            listener: 0,
            sni_server: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn real(c: &RealIp, peer: &str, pairs: &[(&str, &str)]) -> (String, Option<IpAddr>) {
        let out = apply(c, conn(peer), &headers(pairs));
        (out.client.ip().to_string(), out.via)
    }

    #[test]
    fn x_forwarded_for_as_nginx_reads_it() {
        let rec = cfg(RealIpHeader::XForwardedFor, true);
        let xff = |v| [("x-forwarded-for", v)];
        // Untrusted peer: its header is the client's word, ignored.
        assert_eq!(real(&rec, "203.0.113.9", &xff("1.2.3.4")).0, "203.0.113.9");
        // Trusted peer: the right-most untrusted hop, past trusted ones.
        let (ip, via) = real(&rec, "10.0.0.2", &xff("6.6.6.6, 1.2.3.4, 10.9.9.9"));
        assert_eq!(
            (ip.as_str(), via),
            ("1.2.3.4", Some("10.0.0.2".parse().unwrap()))
        );
        // Several lines are one list, in order.
        let two = [
            ("x-forwarded-for", "6.6.6.6, 1.2.3.4"),
            ("x-forwarded-for", "10.1.1.1"),
        ];
        assert_eq!(real(&rec, "10.0.0.2", &two).0, "1.2.3.4");
        // Every hop trusted: the left-most.
        assert_eq!(
            real(&rec, "10.0.0.2", &xff("10.3.3.3, 10.9.9.9")).0,
            "10.3.3.3"
        );
        // Garbage stops the walk at the last good address; none keeps the peer.
        assert_eq!(
            real(&rec, "10.0.0.2", &xff("1.2.3.4, junk, 10.9.9.9")).0,
            "10.9.9.9"
        );
        assert_eq!(
            real(&rec, "10.0.0.2", &xff("junk")),
            ("10.0.0.2".into(), None)
        );
        assert_eq!(real(&rec, "10.0.0.2", &[]), ("10.0.0.2".into(), None));
        // Ports and brackets; a mapped IPv4 peer is trusted as IPv4.
        assert_eq!(
            real(&rec, "::ffff:10.0.0.2", &xff("1.2.3.4:555")).0,
            "1.2.3.4"
        );
        assert_eq!(
            real(&rec, "10.0.0.2", &xff("[2001:db9::7]:80")).0,
            "2001:db9::7"
        );
        // Not recursive: the right-most, trusted or not.
        let flat = cfg(RealIpHeader::XForwardedFor, false);
        assert_eq!(
            real(&flat, "10.0.0.2", &xff("1.2.3.4, 10.9.9.9")).0,
            "10.9.9.9"
        );
    }

    #[test]
    fn forwarded_and_named_headers() {
        let fwd = cfg(RealIpHeader::Forwarded, true);
        let pairs = [(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db9::1]:4711\";proto=https, For=10.2.2.2;by=10.0.0.1",
        )];
        assert_eq!(real(&fwd, "10.0.0.2", &pairs).0, "2001:db9::1");
        let hidden = [("forwarded", "for=_hidden, for=10.2.2.2")];
        assert_eq!(real(&fwd, "10.0.0.2", &hidden).0, "10.2.2.2");
        let cf = cfg(
            RealIpHeader::Named(HeaderName::from_static("cf-connecting-ip")),
            true,
        );
        let pairs = [
            ("cf-connecting-ip", "198.51.100.7"),
            ("x-forwarded-for", "1.1.1.1"),
        ];
        assert_eq!(real(&cf, "2001:db8::5", &pairs).0, "198.51.100.7");
        assert_eq!(
            real(&cf, "2001:db8::5", &[("cf-connecting-ip", "x")]).0,
            "2001:db8::5"
        );
    }
}
