//! Tokens into a tree of directives, with `include` expanded in place.
//!
//! An `include` is resolved as nginx does: a relative path against the
//! main file's directory (nginx's conf prefix), else against the including
//! file's; a pattern with `*`, `?` or `[...]` takes every match, sorted,
//! and matching nothing is not an error. A file that cannot be read is
//! recorded (and reported by the importer) rather than failing the whole
//! import: certbot sites include `/etc/letsencrypt/options-ssl-nginx.conf`,
//! which rarely exists where the import runs.

use std::{
    path::{Path, PathBuf},
    rc::Rc,
};

use super::{
    ParseError, glob,
    lexer::{self, Kind, Token},
};

/// One directive: `name args...;` or `name args... { block }`.
#[derive(Clone, Debug)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    pub file: Rc<Path>,
    pub line: usize,
    /// Unique in one parse: what the importer marks as accounted for.
    pub id: usize,
}

impl Directive {
    /// `file:line`, as nginx -t prints it.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    pub fn children(&self) -> &[Directive] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A parsed configuration and the includes that could not be read.
#[derive(Debug, Default)]
pub struct Parsed {
    pub directives: Vec<Directive>,
    /// `(file, line, message)` for each include that could not be read.
    pub unread: Vec<(Rc<Path>, usize, String)>,
}

const MAX_DEPTH: usize = 16;

struct Parser {
    prefix: PathBuf,
    next_id: usize,
    unread: Vec<(Rc<Path>, usize, String)>,
}

/// Reads `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<Parsed, ParseError> {
    let text = read_config(path).map_err(|e| ParseError {
        file: path.to_path_buf(),
        line: 0,
        message: format!("cannot read: {e}"),
    })?;
    let prefix = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    parse_text(&text, path, &prefix)
}

/// Parses `text` as the file `path`; includes are resolved against `prefix`.
pub fn parse_text(text: &str, path: &Path, prefix: &Path) -> Result<Parsed, ParseError> {
    let mut p = Parser {
        prefix: prefix.to_path_buf(),
        next_id: 0,
        unread: Vec::new(),
    };
    let directives = p.file(text, Rc::from(path), 0)?;
    Ok(Parsed {
        directives,
        unread: p.unread,
    })
}

impl Parser {
    fn file(
        &mut self,
        text: &str,
        file: Rc<Path>,
        depth: usize,
    ) -> Result<Vec<Directive>, ParseError> {
        let toks = lexer::tokens(text).map_err(|e| e.in_file(&file))?;
        let mut pos = 0;
        let out = self.block(&toks, &mut pos, &file, depth, None)?;
        Ok(out)
    }

    /// Directives until `}` (when `open` is the line of its `{`) or the end.
    fn block(
        &mut self,
        toks: &[Token],
        pos: &mut usize,
        file: &Rc<Path>,
        depth: usize,
        open: Option<usize>,
    ) -> Result<Vec<Directive>, ParseError> {
        let err = |line: usize, m: String| ParseError {
            file: file.to_path_buf(),
            line,
            message: m,
        };
        let mut out = Vec::new();
        loop {
            let Some(tok) = toks.get(*pos) else {
                return match open {
                    Some(line) => Err(err(line, "unexpected end of file, expecting \"}\"".into())),
                    None => Ok(out),
                };
            };
            *pos += 1;
            let (name, line) = match &tok.kind {
                Kind::Close => {
                    return match open {
                        Some(_) => Ok(out),
                        None => Err(err(tok.line, "unexpected \"}\"".into())),
                    };
                }
                Kind::Semi => return Err(err(tok.line, "unexpected \";\"".into())),
                Kind::Open => return Err(err(tok.line, "unexpected \"{\"".into())),
                Kind::Word { text, .. } => (text.clone(), tok.line),
            };
            let mut args = Vec::new();
            let block = loop {
                let Some(t) = toks.get(*pos) else {
                    return Err(err(
                        line,
                        format!(
                            "unexpected end of file, expecting \";\" or \"{{\" after \"{name}\""
                        ),
                    ));
                };
                *pos += 1;
                match &t.kind {
                    Kind::Word { text, .. } => args.push(text.clone()),
                    Kind::Semi => break None,
                    Kind::Open => break Some(self.block(toks, pos, file, depth, Some(t.line))?),
                    Kind::Close => {
                        return Err(err(t.line, format!("unexpected \"}}\" in \"{name}\"")));
                    }
                }
            };
            if name == "include" && block.is_none() && args.len() == 1 {
                out.extend(self.include(&args[0], file, line, depth)?);
                continue;
            }
            self.next_id += 1;
            out.push(Directive {
                name,
                args,
                block,
                file: file.clone(),
                line,
                id: self.next_id,
            });
        }
    }

    /// An absolute include under a usual conf prefix (`/etc/nginx/...`)
    /// other than the imported file's directory, as the same path under
    /// that directory when it has files there: a copy of `/etc/nginx`
    /// imported elsewhere reads its own `conf.d/` and `sites-enabled/`,
    /// not the importing machine's.
    fn reroot(&self, p: &Path) -> Option<std::path::PathBuf> {
        const PREFIXES: &[&str] = &[
            "/etc/nginx",
            "/usr/local/nginx/conf",
            "/usr/local/etc/nginx",
            "/opt/homebrew/etc/nginx",
            "/etc/openresty",
        ];
        let rest = PREFIXES
            .iter()
            .filter(|k| Path::new(k) != self.prefix)
            .find_map(|k| p.strip_prefix(k).ok())?;
        let here = self.prefix.join(rest);
        (!glob::expand(&here).is_empty()).then_some(here)
    }

    fn include(
        &mut self,
        pattern: &str,
        from: &Rc<Path>,
        line: usize,
        depth: usize,
    ) -> Result<Vec<Directive>, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError {
                file: from.to_path_buf(),
                line,
                message: format!("includes nested deeper than {MAX_DEPTH} (a cycle?)"),
            });
        }
        let p = Path::new(pattern);
        let base = if p.is_absolute() {
            self.reroot(p).unwrap_or_else(|| p.to_path_buf())
        } else {
            let in_prefix = self.prefix.join(p);
            let beside = from.parent().unwrap_or(Path::new(".")).join(p);
            if glob::expand(&in_prefix).is_empty() && !glob::expand(&beside).is_empty() {
                beside
            } else {
                in_prefix
            }
        };
        let files = glob::expand(&base);
        if files.is_empty() && glob::is_pattern(pattern) {
            self.unread.push((
                from.clone(),
                line,
                format!(
                    "include {pattern}: {} matches no file on this machine: nothing included, as nginx would here; import on the nginx machine if it has files there",
                    base.display()
                ),
            ));
        }
        if files.is_empty() && !glob::is_pattern(pattern) {
            self.unread.push((
                from.clone(),
                line,
                format!(
                    "include {pattern}: {} not found; its directives are not translated",
                    base.display()
                ),
            ));
        }
        let mut out = Vec::new();
        for f in files {
            match read_config(&f) {
                Ok(text) => out.extend(self.file(&text, Rc::from(f.as_path()), depth + 1)?),
                Err(e) => self.unread.push((
                    from.clone(),
                    line,
                    format!(
                        "include {pattern}: cannot read {}: {e}; its directives are not translated",
                        f.display()
                    ),
                )),
            }
        }
        Ok(out)
    }
}

/// Largest file an include may bring in: nginx files are kilobytes.
const MAX_FILE: u64 = 16 << 20;

/// A regular file's text (never a device, a FIFO or a directory, which
/// `include /dev/zero` or a glob over /dev would otherwise read forever).
fn read_config(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE >> 20
        )));
    }
    std::fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Parsed, ParseError> {
        parse_text(text, Path::new("t.conf"), Path::new("/nonexistent"))
    }

    #[test]
    fn blocks_and_positions() {
        let p = parse("http {\n  server {\n    listen 80;\n  }\n}\n").unwrap();
        let http = &p.directives[0];
        assert_eq!((http.name.as_str(), http.line), ("http", 1));
        let listen = &http.children()[0].children()[0];
        assert_eq!(
            (listen.name.as_str(), listen.args.clone(), listen.line),
            ("listen", vec!["80".to_string()], 3)
        );
        assert_eq!(listen.at(), "t.conf:3");
    }

    #[test]
    fn structural_errors_name_the_line() {
        for (text, line) in [
            ("http {\n server {\n}\n", 1),
            ("a b;\n}\n", 2),
            ("a b\n", 1),
            ("a;\n;\n", 2),
            ("a { b }\n", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("t.conf:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn includes_with_globs_relative_to_the_prefix() {
        let dir = std::env::temp_dir().join(format!("rampart-import-inc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sites")).unwrap();
        std::fs::write(dir.join("sites/b.conf"), "server { listen 81; }\n").unwrap();
        std::fs::write(dir.join("sites/a.conf"), "server { listen 80; }\n").unwrap();
        std::fs::write(dir.join("sites/a.conf.bak"), "broken {\n").unwrap();
        std::fs::write(
            dir.join("nginx.conf"),
            "http {\n include sites/*.conf;\n include missing.conf;\n include none/*.conf;\n\
             include /etc/nginx/sites/b.conf;\n}\n",
        )
        .unwrap();
        let p = parse_file(&dir.join("nginx.conf")).unwrap();
        let servers = p.directives[0].children();
        assert_eq!(servers.len(), 3);
        assert!(servers[0].file.ends_with("sites/a.conf"));
        assert_eq!(servers[1].children()[0].args, ["81"]);
        // `/etc/nginx/...` read from the imported copy's directory.
        assert_eq!(&*servers[2].file, dir.join("sites/b.conf").as_path());
        assert_eq!(p.unread.len(), 2, "{:?}", p.unread);
        assert_eq!(p.unread[0].1, 3);
        // A glob matching nothing is said, not silent.
        assert_eq!(p.unread[1].1, 4);
        assert!(p.unread[1].2.contains("matches no file"), "{:?}", p.unread);
        let dev = parse("include /dev/zero;\ninclude /dev/nul[l];\n").unwrap();
        assert_eq!(
            dev.unread.len(),
            2,
            "devices are never read: {:?}",
            dev.unread
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
