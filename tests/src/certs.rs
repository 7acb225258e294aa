//! Test certificates made with the openssl command, as an operator would.

use std::{path::Path, process::Command};

/// Writes `STEM.crt` and `STEM.key` into `dir`: a self-signed EC P-256
/// certificate for `localhost` and 127.0.0.1, valid for a day.
pub fn self_signed(dir: &Path, stem: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
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
