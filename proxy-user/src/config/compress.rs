//! `[compress]`: on-the-fly response compression (nginx `gzip on;
//! gzip_types; gzip_min_length; gzip_comp_level`, Caddy `encode`). Absent:
//! nothing is compressed, as nginx's `gzip` is off by default.

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, error::Locator};

/// A content coding rampart can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Zstd,
    Brotli,
    Gzip,
}

impl Coding {
    /// As `Accept-Encoding` and `Content-Encoding` name it.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CompressSettings {
    /// Codings offered, the preferred first (used when the client weighs
    /// several equally).
    pub encodings: Vec<Coding>,
    /// Media types compressed: `type/subtype` or `type/*`.
    pub types: Vec<String>,
    /// Responses whose `Content-Length` is below this are sent as they are.
    pub min_length: u64,
    pub gzip_level: i32,
    pub brotli_level: i32,
    pub zstd_level: i32,
}

/// What nginx, Caddy and tower-http agree compresses well: text, JSON,
/// JavaScript, XML and SVG.
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/ld+json",
    "application/manifest+json",
    "application/problem+json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/rss+xml",
    "application/atom+xml",
    "image/svg+xml",
];

/// Types that are compressed already (or whose formats are): never
/// compressed, and refused in `types`.
pub fn already_compressed(mime: &str) -> bool {
    let (major, _) = mime.split_once('/').unwrap_or((mime, ""));
    (matches!(major, "image" | "audio" | "video") && mime != "image/svg+xml")
        || matches!(
            mime,
            "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/zstd"
                | "application/x-bzip2"
                | "application/x-xz"
                | "application/x-7z-compressed"
                | "application/x-rar-compressed"
                | "application/pdf"
                | "font/woff"
                | "font/woff2"
        )
}

impl Default for CompressSettings {
    fn default() -> Self {
        CompressSettings {
            encodings: vec![Coding::Zstd, Coding::Brotli, Coding::Gzip],
            types: DEFAULT_TYPES.iter().map(|s| s.to_string()).collect(),
            min_length: 256,
            // Chosen by measurement: BENCHMARKS.md "Compression".
            gzip_level: 1,
            brotli_level: 1,
            zstd_level: 1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCompress {
    pub encodings: Option<Vec<Spanned<String>>>,
    pub types: Option<Vec<Spanned<String>>>,
    pub min_length: Option<Spanned<String>>,
    pub gzip_level: Option<Spanned<i64>>,
    pub brotli_level: Option<Spanned<i64>>,
    pub zstd_level: Option<Spanned<i64>>,
}

/// A route's `compress`: `false` turns compression off for it, `true` on
/// (with `[compress]`'s settings, else the defaults), and a table gives
/// its own settings (each key defaulting as in `[compress]`). Absent: the
/// route compresses as `[compress]` says. The result is what the route
/// uses.
pub(super) fn route(
    loc: &Locator,
    value: Option<Spanned<toml::Value>>,
    site: Option<&CompressSettings>,
) -> Result<Option<std::sync::Arc<CompressSettings>>, ConfigError> {
    let Some(v) = value else {
        return Ok(site.cloned().map(std::sync::Arc::new));
    };
    let span = v.span();
    let settings = match v.into_inner() {
        toml::Value::Boolean(false) => None,
        toml::Value::Boolean(true) => Some(site.cloned().unwrap_or_default()),
        toml::Value::Table(t) => {
            // Spanned fields do not deserialize from a Value: through text.
            let text = toml::to_string(&t).unwrap_or_default();
            let file: FileCompress = toml::from_str(&text)
                .map_err(|e| loc.error(span.clone(), format!("compress: {}", e.message())))?;
            // Values inside an inline table carry no spans of their own:
            // an error names the `compress` key.
            compress(loc, Some(file)).map_err(|e| match e {
                ConfigError::Invalid { message, .. } => loc.error(span.clone(), message),
                other => other,
            })?
        }
        _ => {
            return Err(loc.error(
                span,
                "compress: expected true, false or a table of [compress] keys",
            ));
        }
    };
    Ok(settings.map(std::sync::Arc::new))
}

pub(super) fn compress(
    loc: &Locator,
    c: Option<FileCompress>,
) -> Result<Option<CompressSettings>, ConfigError> {
    let Some(c) = c else { return Ok(None) };
    let mut out = CompressSettings::default();
    if let Some(list) = c.encodings {
        out.encodings.clear();
        for e in list {
            let coding = match e.get_ref().as_str() {
                "zstd" => Coding::Zstd,
                "br" | "brotli" => Coding::Brotli,
                "gzip" => Coding::Gzip,
                other => {
                    return Err(loc.error(
                        e.span(),
                        format!(
                            "compress encoding `{other}`: expected \"zstd\", \"br\" or \"gzip\""
                        ),
                    ));
                }
            };
            if out.encodings.contains(&coding) {
                return Err(loc.error(e.span(), format!("`{}` is listed twice", e.get_ref())));
            }
            out.encodings.push(coding);
        }
    }
    if let Some(list) = c.types {
        out.types.clear();
        for t in list {
            let mime = t.get_ref().trim().to_ascii_lowercase();
            let valid = mime.split_once('/').is_some_and(|(a, b)| {
                !a.is_empty() && a != "*" && !b.is_empty() && !b.contains('/')
            });
            if !valid {
                return Err(loc.error(
                    t.span(),
                    format!("compress type `{mime}`: expected `type/subtype` or `type/*`"),
                ));
            }
            if already_compressed(&mime) {
                return Err(loc.error(
                    t.span(),
                    format!("compress type `{mime}` is compressed already; compressing it again only costs CPU"),
                ));
            }
            out.types.push(mime);
        }
    }
    if let Some(v) = &c.min_length {
        out.min_length = super::units::size_at_most(v.get_ref(), 1 << 30)
            .map_err(|e| loc.error(v.span(), e.0))?;
    }
    for (v, out, lo, hi, key) in [
        (&c.gzip_level, &mut out.gzip_level, 1, 9, "gzip_level"),
        (
            &c.brotli_level,
            &mut out.brotli_level,
            0,
            11,
            "brotli_level",
        ),
        (&c.zstd_level, &mut out.zstd_level, 1, 19, "zstd_level"),
    ] {
        if let Some(v) = v {
            *out = super::int_in(loc, v, lo, hi, key)? as i32;
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(&format!("[compress]\n{body}\n"), Path::new("rampart.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn absent_is_off_and_empty_is_the_defaults() {
        let off = Config::parse("", Path::new("x.toml")).unwrap();
        assert!(off.compress.is_none());
        assert_eq!(
            parse("").unwrap().compress,
            Some(CompressSettings::default())
        );
        let c = parse("encodings = [\"gzip\"]\ntypes = [\"application/json\"]\nmin_length = \"1k\"\ngzip_level = 6")
            .unwrap()
            .compress
            .unwrap();
        assert_eq!(c.encodings, vec![Coding::Gzip]);
        assert_eq!((c.min_length, c.gzip_level), (1024, 6));
    }

    #[test]
    fn a_route_turns_it_off_on_or_sets_its_own() {
        let cfg = |site: &str, route: &str| {
            Config::parse(
                &format!("{site}\n[[route]]\npath = \"/x\"\nrespond = 200\n{route}\n"),
                Path::new("rampart.toml"),
            )
            .map_err(|e| e.to_string())
        };
        let site = "[compress]\nencodings = [\"gzip\"]";
        let c = cfg(site, "").unwrap();
        assert_eq!(c.routes[0].compress.as_deref(), c.compress.as_ref());
        assert!(
            cfg(site, "compress = false").unwrap().routes[0]
                .compress
                .is_none()
        );
        let on = cfg("", "compress = true").unwrap();
        assert!(on.compress.is_none());
        assert_eq!(
            on.routes[0].compress.as_deref(),
            Some(&CompressSettings::default())
        );
        let own = cfg(site, "compress = { gzip_level = 9, min_length = \"1k\" }").unwrap();
        let r = own.routes[0].compress.as_deref().unwrap();
        assert_eq!((r.gzip_level, r.min_length), (9, 1024));
        let e = cfg(site, "compress = { gzip_level = 12 }").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:6:12: gzip_level must be between 1 and 9"),
            "{e}"
        );
        let e = cfg(site, "compress = { level = 1 }").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:6:12: compress: unknown field"),
            "{e}"
        );
        let e = cfg(site, "compress = \"gzip\"").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:6:12: compress: expected true"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_their_place() {
        let e = parse("encodings = [\"gzip\", \"lzma\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:22: compress encoding `lzma`"),
            "{e}"
        );
        let e = parse("types = [\"image/png\"]").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:10: compress type `image/png` is compressed already"),
            "{e}"
        );
        let e = parse("types = [\"json\"]").unwrap_err();
        assert!(e.starts_with("rampart.toml:2:10:"), "{e}");
        let e = parse("gzip_level = 10").unwrap_err();
        assert!(
            e.starts_with("rampart.toml:2:14: gzip_level must be between 1 and 9"),
            "{e}"
        );
        let e = parse("min_length = \"lots\"").unwrap_err();
        assert!(e.starts_with("rampart.toml:2:14:"), "{e}");
    }
}
