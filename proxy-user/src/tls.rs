//! TLS termination: certificates from PEM files, chosen by SNI, with ALPN
//! (h2, http/1.1), TLS 1.2 as the floor, session resumption by cache and by
//! tickets, and only forward-secret AEAD suites (rustls offers no others).
//!
//! The cryptography is aws-lc-rs's: on x86-64 its RSA-2048 signature costs
//! about half of ring's CPU and its X25519 about 55% (thread CPU time per
//! operation, rustls' own provider interfaces: RSA-PSS 333 against 626 µs,
//! X25519 34 against 62 µs, ECDSA P-256 19 against 21 µs; BENCHMARKS.md),
//! and those are most of a new connection's handshake. Both are
//! BoringSSL-derived; the suites, groups and versions offered are the same
//! as with ring.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    ServerConfig,
    crypto::aws_lc_rs as provider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache},
    sign::CertifiedKey,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)", path.display())]
    NoCert { path: PathBuf },
    #[error("{}: no PEM private key found (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)", path.display())]
    NoKey { path: PathBuf },
    #[error("{}: unusable private key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("{}: the key does not match the certificate {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// Whether the key file (rather than the certificate) is at fault.
    pub fn is_key(&self) -> bool {
        match self {
            TlsError::Read { path, .. } => path.extension().is_some_and(|e| e == "key"),
            TlsError::NoKey { .. } | TlsError::BadKey { .. } | TlsError::Mismatch { .. } => true,
            _ => false,
        }
    }
}

/// A certificate chain and its key, loaded and checked against each other.
pub fn load_cert(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.to_path_buf(),
        });
    }
    let key_pem = read(key)?;
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key.to_path_buf(),
    })?;
    let signing = provider::sign::any_supported_type(&der).map_err(|e| TlsError::BadKey {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })?;
    Ok(Arc::new(ck))
}

/// Picks the certificate for the SNI name: exact names, then `*.domain`
/// wildcards, then the first certificate.
#[derive(Debug)]
struct SniResolver {
    certs: Vec<(Vec<String>, Arc<CertifiedKey>)>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name.map(str::to_ascii_lowercase) {
            let wildcard = name.split_once('.').map(|(_, rest)| format!("*.{rest}"));
            for want in std::iter::once(Some(name.clone()))
                .chain(std::iter::once(wildcard))
                .flatten()
            {
                if let Some((_, ck)) = self.certs.iter().find(|(names, _)| names.contains(&want)) {
                    return Some(ck.clone());
                }
            }
        }
        self.certs.first().map(|(_, ck)| ck.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

fn dns_names(ck: &CertifiedKey) -> Vec<String> {
    ck.end_entity_cert()
        .ok()
        .and_then(|der| {
            webpki::EndEntityCert::try_from(der)
                .ok()
                .map(|c| c.valid_dns_names().map(str::to_ascii_lowercase).collect())
        })
        .unwrap_or_default()
}

/// The cipher suites offered, in the server's order of preference: every
/// one AEAD with forward secrecy. AES-128-GCM with SHA-256 comes first: its
/// handshake hashes (the transcript, the key schedule's HKDF) run on the
/// CPU's SHA extensions, where SHA-384's run in software on most x86 CPUs
/// (ring, the provider before, used no SHA-512 acceleration on AMD). That was 8% of the CPU time
/// of a new TLS connection. AES-128 is the suite TLS 1.3 requires every
/// implementation to have, and ample for a key used for one connection.
const SUITES: [rustls::SupportedCipherSuite; 9] = [
    provider::cipher_suite::TLS13_AES_128_GCM_SHA256,
    provider::cipher_suite::TLS13_AES_256_GCM_SHA384,
    provider::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    provider::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    provider::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The key exchange groups, in the server's order of preference: X25519,
/// then the NIST curves P-256 and P-384, as with ring and as nginx on
/// OpenSSL 3.0 offers them. aws-lc-rs also has the hybrid post-quantum
/// X25519MLKEM768, which rustls would pick whenever a client sends its
/// key share (current browsers do): it costs about 1.5x X25519's CPU per
/// handshake, and the nginx builds this proxy is compared with (OpenSSL
/// 3.0, Debian 12) do not offer it, so it is left out.
const KX_GROUPS: [&dyn rustls::crypto::SupportedKxGroup; 3] = [
    provider::kx_group::X25519,
    provider::kx_group::SECP256R1,
    provider::kx_group::SECP384R1,
];

/// The rustls configuration of a TLS listener: its certificates (chain
/// and key files; the first is the default, the others are chosen by SNI),
/// TLS 1.3 only or 1.2 and up, and whether ALPN offers h2. It takes plain
/// values, not the configuration's `TlsSettings`, so that this module
/// depends on nothing of the crate's (the configuration loads certificates
/// with [`load_cert`] to check them).
pub fn server_config<'a>(
    cert_files: impl IntoIterator<Item = (&'a Path, &'a Path)>,
    min_version_13: bool,
    http2: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut certs = Vec::new();
    for (cert, key) in cert_files {
        let ck = load_cert(cert, key)?;
        certs.push((dns_names(&ck), ck));
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if min_version_13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let crypto = rustls::crypto::CryptoProvider {
        cipher_suites: SUITES.to_vec(),
        kx_groups: KX_GROUPS.to_vec(),
        ..provider::default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(crypto))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { certs }));
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    // The server's order of cipher suites wins over the client's (all are
    // AEAD with forward secrecy; see [`SUITES`]), as scanners expect.
    config.ignore_client_order = true;
    // Resumption: a session cache for TLS 1.2 ids and stateless tickets.
    config.session_storage = ServerSessionMemoryCache::new(16_384);
    config.ticketer = provider::Ticketer::new()?;
    Ok(Arc::new(config))
}
