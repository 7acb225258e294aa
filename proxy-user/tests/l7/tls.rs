//! TLS listeners: certificates by SNI, ALPN for HTTP/2 and HTTP/1.1, TLS 1.2
//! as the floor, and session resumption.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, pki_types::ServerName};
use tokio_rustls::TlsConnector;

use crate::support::{backend, proxy, test_dir};

struct Pki {
    roots: RootCertStore,
}

/// Two self-signed certificates: `localhost` (the default) and `other.test`.
fn pki(dir: &std::path::Path) -> Pki {
    let mut roots = RootCertStore::empty();
    for name in ["localhost", "other.test"] {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), cert.cert.pem()).unwrap();
        std::fs::write(
            dir.join(format!("{name}.key")),
            cert.signing_key.serialize_pem(),
        )
        .unwrap();
        roots.add(cert.cert.der().clone()).unwrap();
    }
    Pki { roots }
}

fn client_config(pki: &Pki, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots.clone())
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_sni_alpn_and_resumption() {
    let b = backend(0).await;
    let dir = test_dir("tls");
    let pki = pki(&dir);
    let config = format!(
        r#"
[[listener]]
bind = "127.0.0.1:0"
tls = [{{ cert = "localhost.crt", key = "localhost.key" }}, {{ cert = "other.test.crt", key = "other.test.key" }}]
http2 = true

[upstream.app]
servers = ["{}"]

[[route]]
upstream = "app"
"#,
        b.addr
    );
    let p = proxy(&dir, &config).await;

    // HTTP/2 through ALPN, and the certificate for the SNI name (each verifies).
    for name in ["localhost", "other.test"] {
        let connector = TlsConnector::from(client_config(&pki, &[b"h2", b"http/1.1"]));
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from(name).unwrap(), tcp)
            .await
            .expect("certificate valid for the SNI name");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("https://{name}/hello"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["headers"]["x-forwarded-proto"], "https");
        assert_eq!(
            v["headers"]["host"], name,
            "the :authority becomes the upstream Host"
        );
    }

    // HTTP/1.1 when the client offers only that, and a resumed second session.
    let cfg = client_config(&pki, &[b"http/1.1"]);
    for round in 0..2 {
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let tls = TlsConnector::from(cfg.clone())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        // The client (rustls's default order) prefers AES-256-GCM; the
        // server's order wins, and its first suite hashes with SHA-256.
        assert_eq!(
            tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
        if round == 1 {
            assert_eq!(
                tls.get_ref().1.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "session resumed"
            );
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/x")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(
            sender.send_request(req).await.unwrap().status(),
            StatusCode::OK
        );
    }
}

#[test]
fn a_bad_certificate_is_a_config_error_at_its_line() {
    let dir = test_dir("badcert");
    std::fs::write(dir.join("site.crt"), "not a certificate").unwrap();
    std::fs::write(dir.join("site.key"), "not a key").unwrap();
    let path = dir.join("rampart.toml");
    std::fs::write(
        &path,
        "[[listener]]\nbind = \"127.0.0.1:0\"\ntls = { cert = \"site.crt\", key = \"site.key\" }\n",
    )
    .unwrap();
    let err = proxy_user::config::Config::load(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rampart.toml:3:7") && err.contains("site.crt: no PEM certificate"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
