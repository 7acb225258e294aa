//! A static route's `try_files` (nginx `try_files`): what to look for
//! under the route's directory, and what to do when none of it is there.
//!
//! ```toml
//! try_files = ["$uri", "$uri/", "/index.html"]  # a single-page app
//! try_files = ["$uri", "@app"]                  # files, else [upstream.app]
//! try_files = ["$uri", "$uri/", "=404"]         # what a static route does anyway
//! ```

use std::collections::BTreeMap;

use toml::Spanned;

use super::{ConfigError, error::Locator};

/// The checks in order, then the fallback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TryFiles {
    pub checks: Vec<Check>,
    pub fallback: Fallback,
}

/// One candidate for the request's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// `$uri`: a regular file at the path.
    File,
    /// `$uri/`: a directory at the path (served as a directory is: a 301
    /// to add the slash, then its index file).
    Dir,
}

/// What answers when no check found anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// `=CODE`: that status (and its error page).
    Status(u16),
    /// `/URI`: this file of the route's directory (nginx's internal
    /// redirect, for the URI the same route serves).
    Uri(String),
    /// `@NAME`: proxied to `[upstream.NAME]` (nginx's named location that
    /// does `proxy_pass`).
    Upstream(String),
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::Status(s) => write!(f, "={s}"),
            Fallback::Uri(u) => f.write_str(u),
            Fallback::Upstream(n) => write!(f, "@{n}"),
        }
    }
}

/// Reads `try_files`; `prefix` is the prefix a `static` (alias) route
/// strips, which a fallback URI must start with.
pub(super) fn try_files(
    loc: &Locator,
    list: &Spanned<Vec<Spanned<String>>>,
    upstreams: &BTreeMap<String, super::Upstream>,
    prefix: Option<&str>,
) -> Result<TryFiles, ConfigError> {
    let items = list.get_ref();
    let Some((last, checks)) = items.split_last().filter(|(_, c)| !c.is_empty()) else {
        return Err(loc.error(
            list.span(),
            "try_files needs at least one check and a fallback, e.g. [\"$uri\", \"$uri/\", \"/index.html\"]",
        ));
    };
    let checks = checks
        .iter()
        .map(|c| match c.get_ref().as_str() {
            "$uri" => Ok(Check::File),
            "$uri/" => Ok(Check::Dir),
            other => Err(loc.error(
                c.span(),
                format!("try_files: `{other}`: the checks are \"$uri\" (a file) and \"$uri/\" (a directory)"),
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let text = last.get_ref();
    let fallback = if let Some(code) = text.strip_prefix('=') {
        match code.parse::<u16>() {
            Ok(c) if (100..=599).contains(&c) => Fallback::Status(c),
            _ => {
                return Err(loc.error(
                    last.span(),
                    format!("try_files: `{text}`: a status is =100 to =599"),
                ));
            }
        }
    } else if let Some(name) = text.strip_prefix('@') {
        if !upstreams.contains_key(name) {
            let names: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            return Err(loc.error(
                last.span(),
                format!(
                    "try_files: `{text}` names no [upstream.{name}] (defined: {})",
                    names.join(", ")
                ),
            ));
        }
        Fallback::Upstream(name.to_string())
    } else {
        if !text.starts_with('/') || text.contains(['$', '?']) {
            return Err(loc.error(
                last.span(),
                format!(
                    "try_files: `{text}`: the fallback is a plain path (\"/index.html\"; \
                     no variables or query), @UPSTREAM or =STATUS"
                ),
            ));
        }
        let normal = super::path_match::normal(loc, last, "try_files' fallback")?;
        if let Some(p) = prefix
            && !normal.starts_with(p)
        {
            return Err(loc.error(
                last.span(),
                format!("try_files: `{text}` is outside the route's prefix `{p}`, whose directory `static` serves"),
            ));
        }
        Fallback::Uri(normal)
    };
    Ok(TryFiles { checks, fallback })
}

#[cfg(test)]
mod tests {
    use crate::config::{Action, Config};

    use super::*;

    fn parse(route: &str) -> Result<Option<TryFiles>, String> {
        let dir = std::env::temp_dir();
        let text = format!(
            "[[listener]]\nbind = \"127.0.0.1:0\"\n[upstream.app]\nservers = [\"127.0.0.1:9\"]\n\
             [[route]]\n{route}\n"
        );
        let c = Config::parse(&text, &dir.join("t.toml")).map_err(|e| e.to_string())?;
        match &c.routes[0].action {
            Action::Static { try_files, .. } => Ok(try_files.clone()),
            _ => Ok(None),
        }
    }

    #[test]
    fn the_forms_nginx_sites_use() {
        let root = format!("root = {:?}", std::env::temp_dir());
        let tf = parse(&format!(
            "{root}\ntry_files = [\"$uri\", \"$uri/\", \"/index.html\"]"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(tf.checks, [Check::File, Check::Dir]);
        assert_eq!(tf.fallback, Fallback::Uri("/index.html".into()));
        let tf = parse(&format!("{root}\ntry_files = [\"$uri\", \"@app\"]"))
            .unwrap()
            .unwrap();
        assert_eq!(tf.fallback, Fallback::Upstream("app".into()));
        let tf = parse(&format!("{root}\ntry_files = [\"$uri\", \"=404\"]"))
            .unwrap()
            .unwrap();
        assert_eq!(tf.fallback, Fallback::Status(404));
    }

    #[test]
    fn bad_lists_are_refused_at_their_place() {
        let root = format!("root = {:?}", std::env::temp_dir());
        for (list, line_col, hint) in [
            ("[\"/index.html\"]", "t.toml:7:13", "at least one check"),
            (
                "[\"$uri\", \"$uri.html\", \"=404\"]",
                "t.toml:7:22",
                "the checks are",
            ),
            ("[\"$uri\", \"=42\"]", "t.toml:7:22", "=100 to =599"),
            (
                "[\"$uri\", \"@api\"]",
                "t.toml:7:22",
                "no [upstream.api] (defined: app)",
            ),
            (
                "[\"$uri\", \"/index.php?$args\"]",
                "t.toml:7:22",
                "plain path",
            ),
            (
                "[\"$uri\", \"/a/../index.html\"]",
                "t.toml:7:22",
                "write \"/index.html\"",
            ),
        ] {
            let e = parse(&format!("{root}\ntry_files = {list}")).unwrap_err();
            assert!(e.contains(line_col) && e.contains(hint), "{list}: {e}");
        }
        let e = parse("upstream = \"app\"\ntry_files = [\"$uri\", \"=404\"]").unwrap_err();
        assert!(
            e.contains("t.toml:7:") && e.contains("static routes"),
            "{e}"
        );
        let e = parse(&format!(
            "path = \"/assets/\"\nstatic = {:?}\ntry_files = [\"$uri\", \"/index.html\"]",
            std::env::temp_dir()
        ))
        .unwrap_err();
        assert!(e.contains("outside the route's prefix `/assets/`"), "{e}");
    }
}
