//! `[fleet]`'s TLS to Redis: `redis = "rediss://HOST[:PORT]"` turns it on,
//! `tls = { ca = "FILE" }` trusts that CA instead of the system's roots, and
//! `cert`/`key` present a client certificate (Redis `tls-auth-clients yes`).
//! The files are read and every certificate in them checked when the
//! configuration is loaded, so a missing or bad one is a config error with
//! its position, not a fleet that never connects.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

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
    /// A client certificate chain and its key (PEM, checked at load).
    pub client: Option<ClientCert>,
}

/// `tls = { cert, key }`: the key is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    pub cert_path: PathBuf,
}

impl std::fmt::Debug for FleetTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetTls")
            .field("ca", &self.ca_path)
            .field("cert", &self.client.as_ref().map(|c| &c.cert_path))
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
    let mut tls = FleetTls {
        ca: None,
        ca_path: None,
        client: None,
    };
    let Some(table) = table else {
        return Ok(Some(tls));
    };
    let span = table.span();
    let t = table.into_inner();
    if let Some(ca) = t.ca {
        let path = base.join(ca.get_ref());
        let pem = read_ca(&path).map_err(|m| loc.error(ca.span(), format!("tls.ca: {m}")))?;
        (tls.ca, tls.ca_path) = (Some(pem), Some(path));
    }
    match (t.cert, t.key) {
        (None, None) => {}
        (Some(cert), Some(key)) => {
            let cert_path = base.join(cert.get_ref());
            let cert_pem = read_chain(&cert_path)
                .map_err(|m| loc.error(cert.span(), format!("tls.cert: {m}")))?;
            let key_path = base.join(key.get_ref());
            let key_pem =
                read_key(&key_path).map_err(|m| loc.error(key.span(), format!("tls.key: {m}")))?;
            tls.client = Some(ClientCert {
                cert: cert_pem,
                key: key_pem,
                cert_path,
            });
        }
        _ => {
            return Err(loc.error(
                span,
                "tls: `cert` and `key` go together (a client certificate and its key)",
            ));
        }
    }
    Ok(Some(tls))
}

/// The file's bytes, if it holds at least one PEM certificate.
fn read_chain(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        cert.map_err(|e| format!("{shown}: certificate {}: {e}", n + 1))?;
        n += 1;
    }
    if n == 0 {
        return Err(format!(
            "{shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(pem)
}

/// The file's bytes, if it holds a PEM private key (never shown).
fn read_key(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{shown}: no usable PEM private key: {e}"))?;
    Ok(pem)
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
        std::fs::write(dir.join("key.pem"), ca.signing_key.serialize_pem()).unwrap();
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
        let f = parse_in(
            &dir,
            &format!(
                "{head}redis = \"rediss://r\"\ntls = {{ cert = \"ca.pem\", key = \"key.pem\" }}\n"
            ),
        )
        .unwrap()
        .fleet
        .unwrap();
        let client = f.tls.as_ref().unwrap().client.as_ref().unwrap();
        assert_eq!(client.key, ca.signing_key.serialize_pem().into_bytes());
        assert!(!format!("{:?}", f.tls).contains("PRIVATE"), "{:?}", f.tls);
        let e = parse_in(
            &dir,
            &format!("{head}redis = \"rediss://r\"\ntls = {{ cert = \"ca.pem\" }}\n"),
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:7: tls: `cert` and `key` go together"),
            "{e}"
        );
        let e = parse_in(
            &dir,
            &format!(
                "{head}redis = \"rediss://r\"\ntls = {{ cert = \"ca.pem\", key = \"ca.pem\" }}\n"
            ),
        )
        .unwrap_err();
        assert!(
            e.contains("t.toml:4:32: tls.key:") && e.contains("no usable PEM private key"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
