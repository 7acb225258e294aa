//! `[http] trusted_proxies`, `real_ip_header`, `real_ip_recursive`: which
//! peers may tell the L7 tier who the client is (nginx `set_real_ip_from`,
//! `real_ip_header`, `real_ip_recursive`). The request path that applies
//! them is [`crate::http::real_ip`].

use hyper::header::HeaderName;
use toml::Spanned;

use super::{ConfigError, error::Locator};
use crate::cidr::Cidr;

/// Where a trusted proxy puts the client's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RealIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (every line, in order).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`: its `for=` parameters.
    Forwarded,
    /// One address in a header of its own (`CF-Connecting-IP`, `X-Real-IP`,
    /// `True-Client-IP`).
    Named(HeaderName),
}

/// The validated settings; `None` in [`super::HttpSettings::real_ip`] when
/// no proxy is trusted (then no request header is ever read for it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealIp {
    /// Peers (and, recursively, hops) whose word on the client is taken.
    pub trusted: Vec<Cidr>,
    pub header: RealIpHeader,
    /// Walk a list header from the right past every trusted hop (the
    /// right-most untrusted address is the client); `false` takes the
    /// right-most address whatever it is (nginx's default).
    pub recursive: bool,
}

impl RealIp {
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        let ip = unmapped(ip);
        self.trusted.iter().any(|c| c.contains(ip))
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so an IPv4 CIDR covers a dual-stack peer.
pub fn unmapped(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// Validates the three keys (spans kept for file:line:col errors).
pub(super) fn real_ip(
    loc: &Locator,
    trusted: Option<Spanned<Vec<Spanned<String>>>>,
    header: Option<Spanned<String>>,
    recursive: Option<Spanned<bool>>,
) -> Result<Option<RealIp>, ConfigError> {
    let Some(trusted) = trusted else {
        if let Some(h) = &header {
            return Err(loc.error(
                h.span(),
                "real_ip_header needs trusted_proxies: which peers may set it",
            ));
        }
        if let Some(r) = &recursive {
            return Err(loc.error(r.span(), "real_ip_recursive needs trusted_proxies"));
        }
        return Ok(None);
    };
    let span = trusted.span();
    let trusted: Vec<Cidr> = trusted
        .into_inner()
        .into_iter()
        .map(|s| {
            s.get_ref()
                .parse::<Cidr>()
                .map_err(|e| loc.error(s.span(), format!("trusted_proxies: {e}")))
        })
        .collect::<Result<_, _>>()?;
    if trusted.is_empty() {
        return Err(loc.error(
            span,
            "trusted_proxies is empty: list the proxies' networks, or leave the key out",
        ));
    }
    let header = match header {
        None => RealIpHeader::XForwardedFor,
        Some(h) => {
            let name = h.get_ref().trim();
            if name.eq_ignore_ascii_case("x-forwarded-for") {
                RealIpHeader::XForwardedFor
            } else if name.eq_ignore_ascii_case("forwarded") {
                RealIpHeader::Forwarded
            } else if name.eq_ignore_ascii_case("proxy_protocol") {
                return Err(loc.error(
                    h.span(),
                    "real_ip_header = \"proxy_protocol\" is nginx's spelling: \
                     set `proxy_protocol = true` on the [[listener]] instead",
                ));
            } else {
                RealIpHeader::Named(HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    loc.error(
                        h.span(),
                        format!(
                            "real_ip_header `{name}` is not a header name \
                             (e.g. \"X-Forwarded-For\", \"Forwarded\", \"CF-Connecting-IP\")"
                        ),
                    )
                })?)
            }
        }
    };
    Ok(Some(RealIp {
        trusted,
        header,
        recursive: recursive.is_none_or(Spanned::into_inner),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(http: &str) -> Result<Config, String> {
        Config::parse(&format!("[http]\n{http}\n"), Path::new("rampart.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_parse_and_default_to_recursive_x_forwarded_for() {
        assert_eq!(parse("").unwrap().http.real_ip, None);
        let cfg = parse("trusted_proxies = [\"10.0.0.0/8\", \"2001:db8::1\"]").unwrap();
        let r = cfg.http.real_ip.unwrap();
        assert_eq!(r.header, RealIpHeader::XForwardedFor);
        assert!(r.recursive);
        assert!(r.trusts("10.1.2.3".parse().unwrap()));
        assert!(r.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!r.trusts("11.1.2.3".parse().unwrap()));
        let cfg = parse(
            "trusted_proxies = [\"10.0.0.0/8\"]\nreal_ip_header = \"CF-Connecting-IP\"\n\
             real_ip_recursive = false",
        )
        .unwrap();
        let r = cfg.http.real_ip.unwrap();
        assert_eq!(
            r.header,
            RealIpHeader::Named(HeaderName::from_static("cf-connecting-ip"))
        );
        assert!(!r.recursive);
        let cfg =
            parse("trusted_proxies = [\"10.0.0.0/8\"]\nreal_ip_header = \"forwarded\"").unwrap();
        assert_eq!(cfg.http.real_ip.unwrap().header, RealIpHeader::Forwarded);
    }

    #[test]
    fn bad_values_name_file_line_and_column() {
        let e = parse("trusted_proxies = [\"10.0.0.1/8\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:20: trusted_proxies: `10.0.0.1/8` has host bits"),
            "{e}"
        );
        let e = parse("trusted_proxies = [\"proxy\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:20: trusted_proxies: `proxy` is not"),
            "{e}"
        );
        let e = parse("trusted_proxies = []").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:19: trusted_proxies is empty"),
            "{e}"
        );
        let e = parse("real_ip_header = \"X-Forwarded-For\"").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:18: real_ip_header needs trusted_proxies"),
            "{e}"
        );
        let e = parse("trusted_proxies = [\"10.0.0.0/8\"]\nreal_ip_header = \"bad header\"")
            .unwrap_err();
        assert!(
            e.starts_with("rampart.toml:3:18: real_ip_header `bad header` is not"),
            "{e}"
        );
    }
}
