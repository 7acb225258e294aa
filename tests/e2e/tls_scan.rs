//! The TLS listener under `testssl.sh` (Debian's package), as an auditor
//! would scan it: no protocol below TLS 1.2, no weak or non-forward-secret
//! cipher, the server's cipher order, and no known vulnerability flagged.
//! Findings about the test certificate itself (self-signed, valid for a
//! day, no revocation URI) are expected and set aside. The summary is
//! printed and saved under the test's output folder.

use std::time::Duration;

use serde_json::Value;
use tests::{
    backend::http_get,
    daemon::{control_section, rampart_bin},
    netns::NetNs,
    privilege::require_root,
    process::Spawned,
};

#[test]
fn testssl_finds_no_old_protocol_weak_cipher_or_vulnerability() {
    if !require_root("testssl_finds_no_old_protocol_weak_cipher_or_vulnerability") {
        return;
    }
    let ns = NetNs::new("tls");
    let dir = tests::scratch::Scratch::new("testssl");
    tests::certs::self_signed(&dir, "site");
    let config = dir.join("rampart.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nbind = \"127.0.0.1:8443\"\ntls = {{ cert = \"site.crt\", key = \"site.key\" }}\nhttp2 = true\n\n\
             [[listener]]\nbind = \"127.0.0.1:8080\"\n\n[[route]]\nrespond = 200\n\n{}",
            control_section(&dir)
        ),
    )
    .unwrap();
    let mut cmd = ns.command(rampart_bin().to_str().unwrap());
    cmd.args(["run", "-c"]).arg(&config);
    let mut daemon = Spawned::start("rampart", cmd, &dir.join("rampart.log"));
    daemon.wait_until(Duration::from_secs(15), || {
        http_get(&ns, "127.0.0.1:8080", "/").is_ok()
    });
    let json = dir.join("testssl.json");
    let out = ns
        .command("timeout")
        .args([
            "300",
            "testssl",
            "--quiet",
            "--color",
            "0",
            "--fast",
            "--warnings",
            "off",
        ])
        .arg("--jsonfile")
        .arg(&json)
        .arg("127.0.0.1:8443")
        .output()
        .expect("testssl (installed by `cargo xtask bootstrap`)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let findings: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(&json)
            .unwrap_or_else(|e| panic!("no testssl output ({e}):\n{text}")),
    )
    .unwrap();
    let finding = |id: &str| -> String {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| panic!("testssl reported no {id}:\n{text}"))
            .to_string()
    };

    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("testssl");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut summary = String::new();
    for f in &findings {
        summary.push_str(&format!(
            "{:<9} {:<28} {}\n",
            f["severity"].as_str().unwrap_or(""),
            f["id"].as_str().unwrap_or(""),
            f["finding"].as_str().unwrap_or("")
        ));
    }
    std::fs::write(out_dir.join("summary.txt"), &summary).unwrap();
    std::fs::write(out_dir.join("testssl.txt"), &text).unwrap();
    println!("{summary}");

    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        assert!(
            finding(old).contains("not offered"),
            "{old}: {}",
            finding(old)
        );
    }
    for current in ["TLS1_2", "TLS1_3"] {
        assert!(
            finding(current).starts_with("offered"),
            "{current}: {}",
            finding(current)
        );
    }
    for weak in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
    ] {
        assert!(
            finding(weak).contains("not offered"),
            "{weak}: {}",
            finding(weak)
        );
    }
    assert!(
        finding("cipher_order").starts_with("server"),
        "{}",
        finding("cipher_order")
    );
    // Nothing serious, apart from what the test certificate is by design.
    let serious: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("HIGH" | "CRITICAL")))
        .filter_map(|f| f["id"].as_str())
        .filter(|id| !id.starts_with("cert_"))
        .map(str::to_string)
        .collect();
    assert!(serious.is_empty(), "testssl flags {serious:?}:\n{summary}");
    for vulnerability in [
        "heartbleed",
        "CCS",
        "ticketbleed",
        "ROBOT",
        "secure_renego",
        "secure_client_renego",
        "CRIME_TLS",
        "POODLE_SSL",
        "fallback_SCSV",
        "SWEET32",
        "FREAK",
        "DROWN",
        "LOGJAM",
        "BEAST",
        "LUCKY13",
        "RC4",
    ] {
        let f = findings.iter().find(|f| f["id"] == vulnerability);
        if let Some(f) = f {
            let severity = f["severity"].as_str().unwrap_or("");
            assert!(
                matches!(severity, "OK" | "INFO" | "LOW" | "WARN"),
                "{vulnerability}: {severity} {}",
                f["finding"]
            );
        }
    }
    daemon.terminate();
    drop(dir);
}
