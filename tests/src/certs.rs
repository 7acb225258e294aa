//! Test certificates: made with the openssl command, as an operator would,
//! or (a CA and a certificate it signs) with rcgen.

use std::{path::Path, process::Command};

/// The key a self-signed certificate is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    /// ECDSA on P-256 (`-newkey ec -pkeyopt ec_paramgen_curve:prime256v1`).
    EcdsaP256,
    /// RSA-2048 (`-newkey rsa:2048`), what an operator most often has.
    Rsa2048,
}

impl KeyAlg {
    /// openssl req's arguments that choose the key.
    fn newkey_args(self) -> &'static [&'static str] {
        match self {
            KeyAlg::EcdsaP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            KeyAlg::Rsa2048 => &["-newkey", "rsa:2048"],
        }
    }
}

/// Writes `STEM.crt` and `STEM.key` into `dir`: a self-signed EC P-256
/// certificate for `localhost` and 127.0.0.1, valid for a day.
pub fn self_signed(dir: &Path, stem: &str) {
    self_signed_with(dir, stem, KeyAlg::EcdsaP256)
}

/// As [`self_signed`], with the key `alg`.
pub fn self_signed_with(dir: &Path, stem: &str, alg: KeyAlg) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("openssl")
        .args(["req", "-x509"])
        .args(alg.newkey_args())
        .arg("-nodes")
        .args([
            "-keyout",
            &format!("{stem}.key"),
            "-out",
            &format!("{stem}.crt"),
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `CA.crt` (a new CA) and, for each of `stems`, `STEM.crt`/`STEM.key`
/// (a certificate it signs for `localhost` and 127.0.0.1) into `dir`, with
/// rcgen.
pub fn ca_signed(dir: &Path, ca: &str, stems: &[&str]) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let mut params = CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("rampart test CA {ca}"));
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join(format!("{ca}.crt")), issuer.pem()).unwrap();
    for stem in stems {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}
