//! Arbitrary bytes as an nginx configuration, through the real importer
//! (`import::nginx_text`: lexer, directive tree with includes, translation).
//!
//! Oracle: it never panics, and either
//! - the text is refused with `FILE:LINE: message`, the line one that
//!   exists in the text and the message not empty; or
//! - it is translated into text that parses as TOML whose sections are
//!   rampart's (`http`, `compress`, `error_page`, `listener`, `upstream`,
//!   `limit`, `route`), and
//!   every report names `file:line` with a line of at least 1 (of the text
//!   itself when it is about this file), says why, and prints as one line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use proxy_user::import;

const FILE: &str = "/nonexistent-fuzz-dir/nginx.conf";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    match import::nginx_text(&text, Path::new(FILE)) {
        Err(e) => {
            assert_eq!(e.file, Path::new(FILE));
            assert!(
                e.line >= 1 && e.line <= lines,
                "line {} of a {lines}-line text: {e}",
                e.line
            );
            assert!(
                e.to_string().starts_with(&format!("{FILE}:{}: ", e.line)),
                "{e}"
            );
            assert!(!e.message.trim().is_empty());
        }
        Ok(imported) => {
            let table: toml::Table = toml::from_str(&imported.toml)
                .unwrap_or_else(|e| panic!("not TOML: {e}\n{}", imported.toml));
            for key in table.keys() {
                assert!(
                    [
                        "http",
                        "compress",
                        "error_page",
                        "listener",
                        "upstream",
                        "limit",
                        "route",
                        "server"
                    ]
                    .contains(&key.as_str()),
                    "unexpected section `{key}`"
                );
            }
            for r in &imported.reports {
                let (file, line) = r.at.rsplit_once(':').expect("file:line");
                let line: usize = line.parse().expect("a line number");
                assert!(line >= 1, "{r}");
                if file == FILE {
                    assert!(line <= lines, "line {line} of a {lines}-line text: {r}");
                }
                assert!(!r.message.trim().is_empty(), "{r}");
                let shown = r.to_string();
                assert!(!shown.contains(['\n', '\r']), "one line each: {shown:?}");
            }
        }
    }
});
