//! `[[listener]]`: where rampart accepts connections.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use toml::Spanned;

use super::{ConfigError, error::Locator, file::FileListener, int_in, units};

/// One listening socket.
#[derive(Clone, Debug, PartialEq)]
pub struct Listener {
    pub bind: SocketAddr,
    /// TLS termination; `None` for plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Offer HTTP/2 (ALPN `h2` with TLS, prior knowledge without).
    pub http2: bool,
    /// Answer every request with a 301 to the same host, path and query over https.
    pub redirect_https: bool,
    /// Accept queue length (`listen(2)` backlog).
    pub backlog: u32,
    /// Concurrent connections on this listener; more wait in the backlog.
    pub max_connections: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsSettings {
    /// Certificate chains and keys (PEM); the first is the default, the
    /// others are chosen by SNI against their names.
    pub certs: Vec<CertFiles>,
    /// Lowest protocol version accepted: 1.2 (default) or 1.3.
    pub min_version_13: bool,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
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
            let tables = match t.into_inner() {
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
            if certs.is_empty() {
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
            let handshake_timeout = match &l.handshake_timeout {
                None => Duration::from_secs(10),
                Some(d) => units::duration_at_most(d.get_ref(), units::DAY)
                    .map_err(|e| loc.error(d.span(), e.0))?,
            };
            Some(TlsSettings {
                certs,
                min_version_13,
                handshake_timeout,
            })
        }
    };
    Ok(Listener {
        bind,
        http2: l.http2.unwrap_or(tls.is_some()),
        tls,
        redirect_https: l.redirect_https.unwrap_or(false),
        backlog: l
            .backlog
            .map_or(Ok(1024), |b| int_in(loc, &b, 1, 1 << 20, "backlog"))? as u32,
        max_connections: l.max_connections.map_or(Ok(10_000), |m| {
            int_in(loc, &m, 1, 10_000_000, "max_connections")
        })? as usize,
    })
}

fn cert_files(
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
