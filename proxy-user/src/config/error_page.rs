//! `[[error_page]]`: a file answered instead of rampart's own error text for
//! some statuses (nginx `error_page 502 503 504 /50x.html;`), and with
//! `intercept = true` instead of the upstream's own error responses too
//! (nginx `proxy_intercept_errors on;`). Files are read when the
//! configuration loads (and on every reload), so serving one never touches
//! the disk.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use bytes::Bytes;
use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, error::Locator};

/// Largest error page file read: pages are held in memory.
pub const MAX_PAGE: u64 = 1 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileErrorPage {
    pub status: Spanned<Vec<Spanned<i64>>>,
    pub file: Spanned<String>,
    pub intercept: Option<bool>,
}

/// One page, as it is sent.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorPage {
    pub body: Bytes,
    pub content_type: String,
    /// Also replaces an upstream's response with this status.
    pub intercept: bool,
}

/// Pages by status; empty when none is configured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ErrorPages(BTreeMap<u16, Arc<ErrorPage>>);

impl ErrorPages {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, status: u16) -> Option<&Arc<ErrorPage>> {
        self.0.get(&status)
    }

    /// Each status and its page, by status.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &Arc<ErrorPage>)> {
        self.0.iter().map(|(s, p)| (*s, p))
    }
}

pub(super) fn error_pages(
    loc: &Locator,
    base: &Path,
    pages: Vec<Spanned<FileErrorPage>>,
) -> Result<ErrorPages, ConfigError> {
    let mut out = BTreeMap::new();
    for p in pages {
        let p = p.into_inner();
        let path = base.join(p.file.get_ref());
        let too_big = |n: u64| {
            loc.error(
                p.file.span(),
                format!(
                    "error page {}: {n} bytes; at most {MAX_PAGE}",
                    path.display()
                ),
            )
        };
        let meta = std::fs::metadata(&path)
            .map_err(|e| loc.error(p.file.span(), format!("error page {}: {e}", path.display())))?;
        if meta.len() > MAX_PAGE {
            return Err(too_big(meta.len()));
        }
        let body = std::fs::read(&path)
            .map_err(|e| loc.error(p.file.span(), format!("error page {}: {e}", path.display())))?;
        if body.len() as u64 > MAX_PAGE {
            return Err(too_big(body.len() as u64));
        }
        let mime = mime_guess::from_path(&path).first_or_text_plain();
        let content_type = if mime.type_() == mime_guess::mime::TEXT {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        let page = Arc::new(ErrorPage {
            body: Bytes::from(body),
            content_type,
            intercept: p.intercept.unwrap_or(false),
        });
        if p.status.get_ref().is_empty() {
            return Err(loc.error(p.status.span(), "status: list at least one status"));
        }
        for s in p.status.get_ref() {
            let code = *s.get_ref();
            if !(400..=599).contains(&code) {
                return Err(loc.error(
                    s.span(),
                    format!("error page status {code}: expected 400 to 599"),
                ));
            }
            if out.insert(code as u16, page.clone()).is_some() {
                return Err(loc.error(s.span(), format!("status {code} already has an error page")));
            }
        }
    }
    Ok(ErrorPages(out))
}

/// A route's `error_page` list: its own pages, replacing the
/// `[[error_page]]`s as a location's `error_page` replaces the inherited
/// ones in nginx (`error_page = []`: none). Absent: the site's.
pub(super) fn route(
    loc: &Locator,
    base: &Path,
    pages: Option<Vec<Spanned<FileErrorPage>>>,
    site: &ErrorPages,
) -> Result<ErrorPages, ConfigError> {
    match pages {
        None => Ok(site.clone()),
        Some(list) => error_pages(loc, base, list),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn pages_load_at_parse_and_bad_ones_say_where() {
        let dir = std::env::temp_dir().join(format!("rampart-errpage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("50x.html"), "<h1>down</h1>").unwrap();
        let path = dir.join("rampart.toml");
        let parse = |t: &str| Config::parse(t, &path).map_err(|e| e.to_string());
        let cfg = parse("[[error_page]]\nstatus = [502, 503]\nfile = \"50x.html\"\n").unwrap();
        let p = cfg.error_pages.get(503).unwrap();
        assert_eq!(
            (&p.body[..], p.content_type.as_str(), p.intercept),
            (&b"<h1>down</h1>"[..], "text/html; charset=utf-8", false)
        );
        assert!(cfg.error_pages.get(404).is_none());
        let e = parse("[[error_page]]\nstatus = [502]\nfile = \"nope.html\"\n").unwrap_err();
        assert!(
            e.contains("rampart.toml:3:8: error page") && e.contains("nope.html"),
            "{e}"
        );
        let e = parse("[[error_page]]\nstatus = [302]\nfile = \"50x.html\"\n").unwrap_err();
        assert!(
            e.contains("rampart.toml:2:11: error page status 302"),
            "{e}"
        );
        let e = parse("[[error_page]]\nstatus = [502]\nfile = \"50x.html\"\n[[error_page]]\nstatus = [502]\nfile = \"50x.html\"\n").unwrap_err();
        assert!(
            e.contains("rampart.toml:5:11: status 502 already has"),
            "{e}"
        );
        let route = "[[route]]\npath = \"/api/\"\nrespond = 502\n";
        let own = parse(&format!("[[error_page]]\nstatus = [502]\nfile = \"50x.html\"\n{route}error_page = [{{ status = [404], file = \"50x.html\" }}]\n")).unwrap();
        assert!(own.routes[0].error_pages.get(502).is_none(), "replaced");
        assert!(own.routes[0].error_pages.get(404).is_some());
        let inherit = parse(&format!(
            "[[error_page]]\nstatus = [502]\nfile = \"50x.html\"\n{route}"
        ))
        .unwrap();
        assert!(inherit.routes[0].error_pages.get(502).is_some());
        let e = parse(&format!(
            "{route}error_page = [{{ status = [404], file = \"gone.html\" }}]\n"
        ))
        .unwrap_err();
        assert!(
            e.contains("rampart.toml:4:") && e.contains("gone.html"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
