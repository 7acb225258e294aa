//! Which certificate a TLS listener serves for an SNI name (issue 16,
//! "Server blocks"): the exact name, then the certificate whose
//! `*.domain` covers the name's first label, then the listener's first
//! certificate. A wildcard covers one label only (RFC 6125 §6.4.3), so
//! `*.example.test` is not served for `x.y.example.test`.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio_rustls::TlsConnector;

use crate::support::{proxy, test_dir};

/// Accepts any certificate, so that the test sees which one the server
/// sends even when it is not valid for the name asked (the signatures of
/// the handshake are still checked).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The certificate (end entity) the listener at `addr` sends for `name`,
/// seen by a client that checks nothing; `name` an IP sends no SNI.
async fn served(addr: std::net::SocketAddr, name: &str) -> CertificateDer<'static> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .unwrap_or_else(|e| panic!("{name}: handshake failed: {e}"));
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A handshake by a client that verifies the certificate against the
/// test's roots and `name`, then one request over it.
async fn verified(
    addr: std::net::SocketAddr,
    roots: &RootCertStore,
    name: &str,
) -> Result<StatusCode, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/")
        .header("host", name)
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sni_exact_then_single_label_wildcard_then_default() {
    let dir = test_dir("tls-sni");
    // Three self-signed certificates, each its own root. The wildcard is
    // listed before the exact name, so the exact name winning is not an
    // accident of the order.
    let mut roots = RootCertStore::empty();
    let mut der = std::collections::HashMap::new();
    for (file, name) in [
        ("default", "default.test"),
        ("wild", "*.example.test"),
        ("exact", "exact.example.test"),
    ] {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join(format!("{file}.crt")), cert.cert.pem()).unwrap();
        std::fs::write(
            dir.join(format!("{file}.key")),
            cert.signing_key.serialize_pem(),
        )
        .unwrap();
        roots.add(cert.cert.der().clone()).unwrap();
        der.insert(file, cert.cert.der().clone());
    }
    let config = r#"
[[listener]]
bind = "127.0.0.1:0"
tls = [
  { cert = "default.crt", key = "default.key" },
  { cert = "wild.crt", key = "wild.key" },
  { cert = "exact.crt", key = "exact.key" },
]
http2 = false

[[route]]
respond = 200
body = "ok"
"#;
    let p = proxy(&dir, config).await;
    let addr = p.addr();

    let cases = [
        // The wildcard, for any one label in front of its domain (and
        // whatever the case of the SNI name).
        ("a.example.test", "wild"),
        ("b.example.test", "wild"),
        ("B.Example.Test", "wild"),
        // The exact name wins over the wildcard that also covers it.
        ("exact.example.test", "exact"),
        ("default.test", "default"),
        // Neither: the first certificate, which is not valid for the name.
        ("other.test", "default"),
        ("x.y.example.test", "default"),
        ("example.test", "default"),
        // No SNI at all (an IP address as the name).
        ("127.0.0.1", "default"),
    ];
    for (name, want) in cases {
        let got = served(addr, name).await;
        let got = der.iter().find(|(_, d)| **d == got).map(|(f, _)| *f);
        assert_eq!(got, Some(want), "the certificate served for {name:?}");
        println!("figure: SNI {name:?} -> {want}.crt");
    }

    // A verifying client: served and valid for the names a certificate
    // covers; for the others, the handshake fails on the client's side
    // (the default certificate does not name them), as it does with
    // nginx's default server.
    for name in [
        "a.example.test",
        "b.example.test",
        "exact.example.test",
        "default.test",
    ] {
        assert_eq!(
            verified(addr, &roots, name).await,
            Ok(StatusCode::OK),
            "{name}"
        );
    }
    for name in ["other.test", "x.y.example.test"] {
        let err = verified(addr, &roots, name)
            .await
            .expect_err("the default certificate does not name it");
        assert!(err.contains("not valid for name"), "{name}: {err}");
        println!("figure: verifying client, SNI {name:?}: {err}");
    }
}
