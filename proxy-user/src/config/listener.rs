//! `[[listener]]`: where rampart accepts connections.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileListener, int_in, units};

/// One listening socket.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub bind: SocketAddr,
    /// `name`: how a `[[server]]`'s `listen` names it (else by `bind`).
    pub name: Option<String>,
    /// Its place among the configuration's listeners: the index of its
    /// table of servers ([`super::Servers::tables`]).
    pub id: usize,
    /// TLS termination; `None` for plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Offer HTTP/2 (ALPN `h2` with TLS, prior knowledge without).
    pub http2: bool,
    /// Answer every request with a 301 to the same host, path and query over https.
    pub redirect_https: bool,
    /// The port that redirect names (left out of the Location when 443):
    /// `redirect_https_port`, else the port of the configuration's only TLS
    /// port, else 443. See [`resolve_redirect_ports`].
    pub redirect_https_port: u16,
    /// The host that redirect names (`redirect_https_host`, nginx's
    /// `return 301 https://$server_name$request_uri`); `None`: the host the
    /// client asked for (`$host`).
    pub redirect_https_host: Option<String>,
    /// Accept queue length (`listen(2)` backlog).
    pub backlog: u32,
    /// Concurrent connections on this listener; more wait in the backlog.
    pub max_connections: usize,
    /// Every connection starts with a PROXY protocol header (v1 or v2)
    /// naming the client; one without it is closed
    /// ([`crate::server::proxy_protocol`]).
    pub proxy_protocol: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// Certificate chains and keys (PEM); the first is the default, the
    /// others are chosen by SNI against their names.
    pub certs: Vec<CertFiles>,
    /// Lowest protocol version accepted: 1.2 (default) or 1.3.
    pub min_version_13: bool,
    /// Time allowed for the TLS handshake (nginx's `ssl_handshake_timeout`).
    pub handshake_timeout: Duration,
    /// Time allowed for the TLS handshake while the listener is busy (more
    /// than half of its `max_connections` open): at most `handshake_timeout`.
    /// See [`crate::server::lifecycle::HandshakeDeadline`].
    pub busy_handshake_timeout: Duration,
}

/// `handshake_timeout` when none is configured: nginx's `ssl_handshake_timeout`.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// `busy_handshake_timeout` when none is configured (it was every
/// handshake's timeout before issue 17).
pub const BUSY_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsSettings {
    /// The rustls configuration these settings make (see [`crate::tls`]).
    pub fn server_config(
        &self,
        http2: bool,
    ) -> Result<std::sync::Arc<rustls::ServerConfig>, crate::tls::TlsError> {
        let files = self
            .certs
            .iter()
            .map(|f| (f.cert.as_path(), f.key.as_path()));
        crate::tls::server_config(files, self.min_version_13, http2)
    }
}

pub(super) fn listener(
    loc: &Locator,
    base: &std::path::Path,
    l: Spanned<FileListener>,
) -> Result<Listener, ConfigError> {
    let l = l.into_inner();
    let bind: SocketAddr = l.bind.get_ref().parse().map_err(|_| {
        loc.error(
            l.bind.span(),
            format!(
                "`{}` is not an address:port (expected e.g. \"0.0.0.0:443\" or \"[::]:443\")",
                l.bind.get_ref()
            ),
        )
    })?;
    let tls = match l.tls {
        None => None,
        Some(t) => {
            let span = t.span();
            // `tls = true`: TLS with the certificates of its `[[server]]`s
            // (nginx's `listen 443 ssl`), checked once they are known.
            let from_servers = matches!(t.get_ref(), toml::Value::Boolean(true));
            let tables = match t.into_inner() {
                toml::Value::Boolean(true) => Vec::new(),
                toml::Value::Table(one) => vec![one],
                toml::Value::Array(many) => many
                    .into_iter()
                    .map(|v| match v {
                        toml::Value::Table(t) => Ok(t),
                        _ => Err(loc.error(
                            span.clone(),
                            "tls: expected { cert = \"...\", key = \"...\" } or a list of them",
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(loc.error(
                        span,
                        "tls: expected { cert = \"...\", key = \"...\" } or a list of them",
                    ));
                }
            };
            let mut certs = Vec::new();
            for table in tables {
                certs.push(cert_files(loc, base, &table, span.clone())?);
            }
            if certs.is_empty() && !from_servers {
                return Err(loc.error(span, "tls needs at least one { cert, key }"));
            }
            let min_version_13 = match l.tls_min_version.as_ref().map(|v| v.get_ref().as_str()) {
                None | Some("1.2") => false,
                Some("1.3") => true,
                Some(other) => {
                    let span = l.tls_min_version.as_ref().unwrap().span();
                    return Err(loc.error(span, format!("tls_min_version `{other}`: expected \"1.2\" or \"1.3\" (older versions are not offered)")));
                }
            };
            let timeout = |key: &Option<Spanned<String>>, default: Duration| match key {
                None => Ok(default),
                Some(d) => units::duration_at_most(d.get_ref(), units::DAY)
                    .map_err(|e| loc.error(d.span(), e.0)),
            };
            let handshake_timeout = timeout(&l.handshake_timeout, HANDSHAKE_TIMEOUT)?;
            // Never longer than the handshake's own timeout (a short
            // `handshake_timeout` alone shortens both).
            let busy_handshake_timeout =
                timeout(&l.busy_handshake_timeout, BUSY_HANDSHAKE_TIMEOUT)?.min(handshake_timeout);
            Some(TlsSettings {
                certs,
                min_version_13,
                handshake_timeout,
                busy_handshake_timeout,
            })
        }
    };
    let redirect_https = l.redirect_https.unwrap_or(false);
    let redirect_https_port = match &l.redirect_https_port {
        None => None,
        Some(p) if !redirect_https => {
            return Err(loc.error(
                p.span(),
                "redirect_https_port needs redirect_https = true on this listener",
            ));
        }
        Some(p) => Some(int_in(loc, p, 1, 65535, "redirect_https_port")? as u16),
    };
    let redirect_https_host = match &l.redirect_https_host {
        None => None,
        Some(h) if !redirect_https => {
            return Err(loc.error(
                h.span(),
                "redirect_https_host needs redirect_https = true on this listener",
            ));
        }
        Some(h) => Some(redirect_host(h.get_ref()).map_err(|why| {
            loc.error(
                h.span(),
                format!("redirect_https_host `{}`: {why}", h.get_ref()),
            )
        })?),
    };
    Ok(Listener {
        redirect_https_host,
        bind,
        name: l.name.map(|n| n.into_inner()),
        id: 0,
        redirect_https_port: redirect_https_port.unwrap_or(0),
        http2: l.http2.unwrap_or(tls.is_some()),
        tls,
        redirect_https,
        backlog: l
            .backlog
            .map_or(Ok(1024), |b| int_in(loc, &b, 1, 1 << 20, "backlog"))? as u32,
        max_connections: l.max_connections.map_or(Ok(10_000), |m| {
            int_in(loc, &m, 1, 10_000_000, "max_connections")
        })? as usize,
        proxy_protocol: l.proxy_protocol.unwrap_or(false),
    })
}

/// A host name or address for a Location header: letters, digits, `.`,
/// `-`, `_`, or a bracketed IPv6 address; no port (that is
/// `redirect_https_port`), no scheme, no path.
fn redirect_host(h: &str) -> Result<String, &'static str> {
    let ok = if let Some(v6) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(
            "expected a host name such as \"example.com\" (no scheme, port or path; the port is redirect_https_port)",
        )
    }
}

/// Gives each redirect listener without `redirect_https_port` (left as 0
/// by [`listener`]) the port of the configuration's TLS listeners when they
/// all share one (as `0.0.0.0:8443` and `[::]:8443` do), else 443. A TLS
/// listener bound to port 0 names no port.
pub(super) fn resolve_redirect_ports(listeners: &mut [Listener]) {
    let mut tls_ports = listeners
        .iter()
        .filter(|l| l.tls.is_some())
        .map(|l| l.bind.port());
    let first = tls_ports.next();
    let only = match first {
        Some(p) if p != 0 && tls_ports.all(|q| q == p) => p,
        _ => 443,
    };
    for l in listeners.iter_mut().filter(|l| l.redirect_https_port == 0) {
        l.redirect_https_port = only;
    }
}

pub(super) fn cert_files(
    loc: &Locator,
    base: &std::path::Path,
    t: &toml::Table,
    span: std::ops::Range<usize>,
) -> Result<CertFiles, ConfigError> {
    let expected = "tls: expected { cert = \"file.crt\", key = \"file.key\" }";
    if t.keys().any(|k| k != "cert" && k != "key") {
        return Err(loc.error(
            span,
            format!(
                "{expected}; unknown keys {:?}",
                t.keys().collect::<Vec<_>>()
            ),
        ));
    }
    let (Some(cert), Some(key)) = (
        t.get("cert").and_then(|v| v.as_str()),
        t.get("key").and_then(|v| v.as_str()),
    ) else {
        return Err(loc.error(span, expected));
    };
    let files = CertFiles {
        cert: base.join(cert),
        key: base.join(key),
    };
    // Load them now, so `config check` and a reload catch a bad file.
    crate::tls::load_cert(&files.cert, &files.key).map_err(|e| loc.error(span, e.to_string()))?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("rampart.toml")).map_err(|e| e.to_string())
    }

    fn plain(bind: &str, redirect_port: u16) -> Listener {
        Listener {
            bind: bind.parse().unwrap(),
            name: None,
            id: 0,
            tls: None,
            http2: false,
            redirect_https: true,
            redirect_https_port: redirect_port,
            redirect_https_host: None,
            backlog: 1024,
            max_connections: 10,
            proxy_protocol: false,
        }
    }

    fn tls(bind: &str) -> Listener {
        Listener {
            tls: Some(TlsSettings {
                certs: Vec::new(),
                min_version_13: false,
                handshake_timeout: HANDSHAKE_TIMEOUT,
                busy_handshake_timeout: BUSY_HANDSHAKE_TIMEOUT,
            }),
            redirect_https: false,
            ..plain(bind, 0)
        }
    }

    #[test]
    fn redirect_port_is_validated_with_its_place() {
        let cfg = parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https = true\nredirect_https_port = 8443").unwrap();
        assert_eq!(cfg.listeners[0].redirect_https_port, 8443);
        let e = parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https = true\nredirect_https_port = 70000").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:4:23: redirect_https_port must be between 1 and 65535"),
            "{e}"
        );
        let e =
            parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https_port = 8443").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:3:23: redirect_https_port needs redirect_https = true"),
            "{e}"
        );
    }

    #[test]
    fn redirect_host_is_a_bare_host_and_one_per_port() {
        let cfg = parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https = true\nredirect_https_host = \"Example.com\"").unwrap();
        assert_eq!(
            cfg.listeners[0].redirect_https_host.as_deref(),
            Some("example.com")
        );
        for bad in ["https://example.com", "example.com:8443", "a/b", ""] {
            let e = parse(&format!("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https = true\nredirect_https_host = \"{bad}\"")).unwrap_err();
            assert!(
                e.starts_with("rampart.toml:4:23: redirect_https_host"),
                "{e}"
            );
        }
        let e = parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https_host = \"a.example\"")
            .unwrap_err();
        assert!(e.contains("needs redirect_https = true"), "{e}");
        // Each listener names its own host (a request knows its listener).
        let cfg = parse("[[listener]]\nbind = \"0.0.0.0:80\"\nredirect_https = true\nredirect_https_host = \"a.example\"\n[[listener]]\nbind = \"[::]:80\"\nredirect_https = true\n").unwrap();
        assert_eq!(
            (
                cfg.listeners[0].redirect_https_host.as_deref(),
                cfg.listeners[1].redirect_https_host.as_deref()
            ),
            (Some("a.example"), None)
        );
    }

    #[test]
    fn redirect_port_defaults_to_the_only_tls_port_else_443() {
        let cases: [(&[Listener], u16); 6] = [
            (&[plain("0.0.0.0:80", 0)], 443),
            (&[plain("0.0.0.0:80", 0), tls("0.0.0.0:8443")], 8443),
            (
                &[
                    plain("0.0.0.0:80", 0),
                    tls("0.0.0.0:8443"),
                    tls("[::]:8443"),
                ],
                8443,
            ),
            (
                &[
                    plain("0.0.0.0:80", 0),
                    tls("0.0.0.0:443"),
                    tls("0.0.0.0:8443"),
                ],
                443,
            ),
            (&[plain("0.0.0.0:80", 0), tls("127.0.0.1:0")], 443),
            (&[plain("0.0.0.0:80", 9443), tls("0.0.0.0:8443")], 9443),
        ];
        for (listeners, want) in cases {
            let mut ls = listeners.to_vec();
            resolve_redirect_ports(&mut ls);
            assert_eq!(ls[0].redirect_https_port, want, "{:?}", listeners);
        }
    }

    #[test]
    fn handshake_timeouts_default_to_nginxs_and_busy_is_never_longer() {
        // Certificates are read at load: a real pair.
        let dir = std::env::temp_dir().join(format!("rampart-handshake-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("a.crt"), pair.cert.pem()).unwrap();
        std::fs::write(dir.join("a.key"), pair.signing_key.serialize_pem()).unwrap();
        let d = dir.display();
        let timeouts = |extra: &str| {
            let cfg = parse(&format!(
                "[[listener]]\nbind = \"0.0.0.0:443\"\ntls = {{ cert = \"{d}/a.crt\", key = \"{d}/a.key\" }}\n{extra}"
            ))?;
            let t = cfg.listeners[0].tls.clone().unwrap();
            Ok::<_, String>((t.handshake_timeout, t.busy_handshake_timeout))
        };
        let s = Duration::from_secs;
        assert_eq!(timeouts(""), Ok((s(60), s(10))));
        assert_eq!(
            timeouts("busy_handshake_timeout = \"2s\""),
            Ok((s(60), s(2)))
        );
        assert_eq!(timeouts("handshake_timeout = \"5s\""), Ok((s(5), s(5))));
        let long = timeouts("busy_handshake_timeout = \"2d\"").unwrap_err();
        assert!(long.contains("too long"), "{long}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
