//! Arbitrary bytes as a configuration file, through the real loader
//! (`Config::parse`: TOML/serde into the raw form, then validation).
//!
//! Oracle: it never panics, and every error names where it is: the loader
//! promises `FILE:LINE:COLUMN: message` (config/error.rs), with a line and
//! column that exist in the text (1-based; the column may be one past the
//! end of its line, where a missing token was expected).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use proxy_user::config::{Config, ConfigError};

const FILE: &str = "/fuzz/rampart.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::parse(&text, Path::new(FILE)) {
        Ok(_) => {}
        Err(ConfigError::Invalid {
            path,
            line,
            column,
            message,
        }) => {
            assert_eq!(path, Path::new(FILE));
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                line >= 1 && line <= lines.len(),
                "line {line} of a {}-line text",
                lines.len()
            );
            let width = lines[line - 1].chars().count();
            assert!(
                column >= 1 && column <= width + 1,
                "column {column} on line {line} of {width} characters"
            );
            let shown = ConfigError::Invalid {
                path,
                line,
                column,
                message: message.clone(),
            }
            .to_string();
            assert!(
                shown.starts_with(&format!("{FILE}:{line}:{column}: ")),
                "error without its location: {shown}"
            );
            assert!(
                !message.trim().is_empty(),
                "an error must say what is wrong"
            );
        }
        Err(e @ ConfigError::Read { .. }) => panic!("parsing text cannot fail to read: {e}"),
    }
});
