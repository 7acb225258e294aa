//! `rampart config import nginx FILE [-o OUT]`: writes the translation and
//! reports, and exits 0 (all translated), 2 (some not) or 1 (syntax error).

use std::io::Write;

use anyhow::{Context, Result};
use serde_json::json;

use super::Output;
use crate::{
    cli::ImportFrom,
    import::{self, Kind},
};

/// Exit status when something could not be translated.
pub const EXIT_PARTIAL: i32 = 2;

pub fn run(out: &Output, from: &ImportFrom) -> Result<()> {
    let ImportFrom::Nginx { file, output } = from;
    let imported = match import::nginx_file(file) {
        Ok(i) => i,
        Err(e) => {
            if out.json {
                println!(
                    "{}",
                    json!({ "error": e.to_string(), "file": e.file, "line": e.line })
                );
            } else {
                eprintln!("error: {e}");
            }
            std::process::exit(1);
        }
    };
    if let Some(path) = output {
        std::fs::write(path, &imported.toml)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if out.json {
        let value = json!({
            "file": file,
            "output": output,
            "complete": imported.complete(),
            "toml": if output.is_none() { Some(&imported.toml) } else { None },
            "reports": imported.reports,
        });
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout().lock(), "{value}");
    } else {
        if output.is_none() {
            let _ = std::io::stdout().lock().write_all(imported.toml.as_bytes());
        }
        for r in imported
            .reports
            .iter()
            .filter(|r| r.kind != Kind::Translated)
        {
            eprintln!("{r}");
        }
        let unsupported = imported
            .reports
            .iter()
            .filter(|r| r.kind == Kind::Unsupported)
            .count();
        if unsupported > 0 {
            eprintln!(
                "{}: {unsupported} directive(s) not translated",
                file.display()
            );
        }
    }
    if !imported.complete() {
        std::process::exit(EXIT_PARTIAL);
    }
    Ok(())
}
