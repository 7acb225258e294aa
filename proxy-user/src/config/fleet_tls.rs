//! `[fleet]`'s TLS to Redis: `redis = "rediss://HOST[:PORT]"` turns it on,
//! and `tls = { ca = "FILE" }` trusts that CA instead of the system's roots.
//! The CA file is read and every certificate in it checked when the
//! configuration is loaded, so a missing or bad one is a config error with
//! its position, not a fleet that never connects.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::{ConfigError, error::Locator, file::FileFleetTls};

/// Most certificates a CA file may hold (a bundle of roots is far below).
const MAX_CA_CERTS: usize = 1_000;

/// How the fleet's connection to Redis is encrypted.
#[derive(Clone, PartialEq, Eq)]
pub struct FleetTls {
    /// PEM roots to trust (checked at load); `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// Where `ca` came from, for `config show` and logs.
    pub ca_path: Option<PathBuf>,
}

impl std::fmt::Debug for FleetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetTls")
            .field("ca", &self.ca_path)
            .finish()
    }
}

/// `rediss://` / `redis://` off `redis`'s value: whether it asks for TLS,
/// and the `HOST[:PORT]` left.
pub(super) fn scheme(s: &str) -> Result<(bool, &str), String> {
    if let Some(rest) = s.strip_prefix("rediss://") {
        return Ok((true, rest));
    }
    if let Some(rest) = s.strip_prefix("redis://") {
        return Ok((false, rest));
    }
    match s.split_once("://") {
        Some((scheme, _)) => Err(format!(
            "`{scheme}://` is not supported (HOST[:PORT], redis://HOST[:PORT] or rediss://HOST[:PORT] for TLS)"
        )),
        None => Ok((false, s)),
    }
}

/// The TLS settings: `tls` needs `rediss://`, and its CA file is read and
/// checked now.
pub(super) fn fleet_tls(
    loc: &Locator,
    base: &Path,
    rediss: bool,
    table: Option<toml::Spanned<FileFleetTls>>,
) -> Result<Option<FleetTls>, ConfigError> {
    if !rediss {
        return match table {
            Some(t) => Err(loc.error(
                t.span(),
                "tls: needs `redis = \"rediss://HOST[:PORT]\"` (TLS to Redis is asked for by the rediss:// scheme)",
            )),
            None => Ok(None),
        };
    }
    let Some(ca) = table.and_then(|t| t.into_inner().ca) else {
        return Ok(Some(FleetTls {
            ca: None,
            ca_path: None,
        }));
    };
    let path = base.join(ca.get_ref());
    let pem = read_ca(&path).map_err(|m| loc.error(ca.span(), format!("tls.ca: {m}")))?;
    Ok(Some(FleetTls {
        ca: Some(pem),
        ca_path: Some(path),
    }))
}

/// The file's bytes, if it holds 1 to [`MAX_CA_CERTS`] PEM certificates
/// that rustls accepts as trust anchors.
fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in CertificateDer::pem_slice_iter(&pem).enumerate() {
        let cert = cert.map_err(|e| format!("{shown}: certificate {}: {e}", i + 1))?;
        if i >= MAX_CA_CERTS {
            return Err(format!("{shown}: more than {MAX_CA_CERTS} certificates"));
        }
        roots
            .add(cert)
            .map_err(|e| format!("{shown}: certificate {} is not a usable CA: {e}", i + 1))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse_in(dir: &Path, text: &str) -> Result<Config, String> {
        Config::parse(text, &dir.join("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn rediss_turns_tls_on_and_the_ca_is_checked_at_load_with_its_position() {
        let dir = std::env::temp_dir().join(format!("rampart-fleet-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["redis.test".into()]).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
        std::fs::write(
            dir.join("bad.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let head = "[fleet]\nname = \"e\"\n";

        let f = parse_in(&dir, &format!("{head}redis = \"r:6380\"\n"))
            .unwrap()
            .fleet
            .unwrap();
        assert_eq!((f.host.as_str(), f.port, f.tls), ("r", 6380, None));
        let f = parse_in(&dir, &format!("{head}redis = \"redis://r\"\n"))
            .unwrap()
            .fleet
            .unwrap();
        assert_eq!((f.host.as_str(), f.port, f.tls), ("r", 6379, None));

        let f = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://127.0.0.1:7000\"\n"),
        )
        .unwrap()
        .fleet
        .unwrap();
        assert_eq!((f.host.as_str(), f.port), ("127.0.0.1", 7000));
        let tls = f.tls.unwrap();
        assert_eq!(tls.ca, None, "the system's roots");

        let f = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://redis.test\"\ntls = {{ ca = \"ca.pem\" }}\n"),
        )
        .unwrap()
        .fleet
        .unwrap();
        let tls = f.tls.unwrap();
        assert_eq!(tls.ca.as_deref(), Some(ca.cert.pem().as_bytes()));
        assert!(format!("{tls:?}").contains("ca.pem"));

        let e = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://r\"\ntls = {{ ca = \"missing.pem\" }}\n"),
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:14: tls.ca: cannot read") && e.contains("missing.pem"),
            "{e}"
        );
        let e = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://r\"\ntls = {{ ca = \"empty.pem\" }}\n"),
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:14: tls.ca:") && e.contains("holds no PEM certificate"),
            "{e}"
        );
        let e = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://r\"\ntls = {{ ca = \"bad.pem\" }}\n"),
        )
        .unwrap_err();
        assert!(e.contains("t.toml:4:14: tls.ca:"), "{e}");
        let e = parse_in(
            &dir,
            &format!("{head}redis = \"r\"\ntls = {{ ca = \"ca.pem\" }}\n"),
        )
        .unwrap_err();
        assert!(e.contains("t.toml:4:7: tls: needs"), "{e}");
        let e = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://r\"\ntls = {{ server_name = \"x\" }}\n"),
        )
        .unwrap_err();
        assert!(e.contains("unknown field `server_name`"), "{e}");
        let e = parse_in(&dir, &format!("{head}redis = \"unix:///run/redis.sock\"\n")).unwrap_err();
        assert!(
            e.contains("t.toml:3:9: redis: `unix://` is not supported"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
