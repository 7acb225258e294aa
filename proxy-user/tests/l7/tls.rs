//! TLS listeners: certificates by SNI, ALPN for HTTP/2 and HTTP/1.1, TLS 1.2
//! as the floor, and session resumption.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, HandshakeKind, RootCertStore, pki_types::ServerName};
use tokio_rustls::TlsConnector;

use crate::support::{backend, proxy, test_dir};

pub(crate) struct Pki {
    roots: RootCertStore,
}

/// Two self-signed certificates: `localhost` (the default) and `other.test`.
pub(crate) fn pki(dir: &std::path::Path) -> Pki {
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

pub(crate) fn client_config(pki: &Pki, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
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

/// The frames in `bytes` (RFC 9113 §4.1): type, flags, stream and payload.
fn frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 9 {
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff;
        let end = (9 + len).min(bytes.len());
        out.push((bytes[3], bytes[4], stream, bytes[9..end].to_vec()));
        bytes = &bytes[end..];
    }
    out
}

/// After ALPN chose `h2`, the connection speaks only HTTP/2: an HTTP/1
/// request (an invalid preface) gets a GOAWAY with PROTOCOL_ERROR and the
/// connection closes, not an `HTTP/1.1 400` (issue 13, item 11; h2spec
/// 3.5/2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_alpn_h2_a_bad_preface_gets_a_goaway() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = test_dir("tls-preface");
    let pki = pki(&dir);
    let config = r#"
[[listener]]
bind = "127.0.0.1:0"
tls = { cert = "localhost.crt", key = "localhost.key" }
http2 = true

[[route]]
respond = 200
body = "ok"
"#;
    let p = proxy(&dir, config).await;
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
    ] {
        let connector = TlsConnector::from(client_config(&pki, &[b"h2"]));
        let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(bad).await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            let mut buf = [0u8; 1024];
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "the connection was neither refused nor closed"
        );
        assert!(
            !got.starts_with(b"HTTP/"),
            "an HTTP/1 answer: {}",
            String::from_utf8_lossy(&got)
        );
        let frames = frames(&got);
        let goaway = frames
            .iter()
            .find(|f| f.0 == 0x7)
            .unwrap_or_else(|| panic!("no GOAWAY in {frames:?}"));
        let code = u32::from_be_bytes(goaway.3[4..8].try_into().unwrap());
        assert_eq!(
            (goaway.2, code),
            (0, 0x1),
            "GOAWAY on stream 0 with PROTOCOL_ERROR"
        );
        println!(
            "figure: {:?}: frames {:?}",
            String::from_utf8_lossy(&bad[..14]),
            frames.iter().map(|f| f.0).collect::<Vec<_>>()
        );
    }
    // The other way round: after ALPN `http/1.1`, an HTTP/2 preface is
    // not taken up as HTTP/2 (no SETTINGS frame comes back).
    let connector = TlsConnector::from(client_config(&pki, &[b"http/1.1"]));
    let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut got)).await;
    // hyper's HTTP/1 closes on an HTTP/2 preface without an answer.
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 4"),
        "served as HTTP/2: {got:?}"
    );
    println!(
        "figure: h2 preface after ALPN http/1.1: {} bytes back, closed",
        got.len()
    );
    // A well-formed HTTP/2 client is still served.
    let connector = TlsConnector::from(client_config(&pki, &[b"h2"]));
    let tcp = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://localhost/x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        sender.send_request(req).await.unwrap().status(),
        StatusCode::OK
    );
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

/// The key exchange groups are nginx's on OpenSSL 3.0: X25519, P-256 and
/// P-384, each completing a handshake when it is all a client offers; the
/// hybrid post-quantum X25519MLKEM768 (which aws-lc-rs has, and which costs
/// about 1.5x X25519's CPU) is not offered, so a client that has only it
/// is refused rather than served with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_exchange_groups_are_nginxs() {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    let dir = test_dir("tls-groups");
    let pki = pki(&dir);
    let config = r#"
[[listener]]
bind = "127.0.0.1:0"
tls = { cert = "localhost.crt", key = "localhost.key" }

[[route]]
respond = 200
body = "ok"
"#;
    let p = proxy(&dir, config).await;
    let handshake = |group: &'static dyn rustls::crypto::SupportedKxGroup| {
        let provider = rustls::crypto::CryptoProvider {
            kx_groups: vec![group],
            ..default_provider()
        };
        let cfg = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(pki.roots.clone())
            .with_no_client_auth();
        let addr = p.addr();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = TlsConnector::from(Arc::new(cfg))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await?;
            Ok::<_, std::io::Error>(
                tls.get_ref()
                    .1
                    .negotiated_key_exchange_group()
                    .map(|g| g.name()),
            )
        }
    };
    for group in [kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1] {
        let got = handshake(group).await.expect("a handshake with the group");
        assert_eq!(got, Some(group.name()));
    }
    let refused = handshake(kx_group::X25519MLKEM768).await;
    assert!(
        refused.is_err(),
        "X25519MLKEM768 was negotiated: {refused:?}"
    );
}
