//! `[[server]]`: virtual hosts, as nginx's `server {}` blocks. Each has
//! its names (`server_name`), the listeners it is on (`listen`), its own
//! routes (`[[server.route]]`) and certificates (`tls`). A request goes to
//! the server of its listener that its host selects ([`Table::select`]),
//! else to the listener's default server: the one with `default_server =
//! true`, else the top-level routes' server, else the first on it.
//!
//! Top-level `[[route]]`s are one server without names on every listener
//! (the only one when there is no `[[server]]`), so single-site files work
//! as they did. Every server's routes are kept in one list,
//! [`super::Config::routes`], each server owning a range of it: routes are
//! numbered, measured and logged as before.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{
    CertFiles, ConfigError, Listener, Route,
    error::{Locator, line_col},
    file::FileRoute,
    listener::cert_files,
    route::{self, Known},
    server_name::{ServerName, Table},
};

/// `[[server]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileServerBlock {
    pub server_name: Option<Spanned<Vec<Spanned<String>>>>,
    pub listen: Option<Spanned<Vec<Spanned<String>>>>,
    pub default_server: Option<Spanned<bool>>,
    pub tls: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub route: Vec<Spanned<FileRoute>>,
}

/// One virtual host.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerBlock {
    /// `server_name`, as parsed; empty: only ever a default server.
    pub names: Vec<ServerName>,
    /// The listeners it is on, as indices of [`super::Config::listeners`].
    pub listen: Vec<usize>,
    /// Its routes: a range of [`super::Config::routes`], matched in order.
    pub routes: Range<usize>,
    /// The server of the top-level routes (no `[[server]]` section).
    pub implicit: bool,
    /// Its certificates, also added to its listeners' (chosen by SNI).
    pub tls: Vec<CertFiles>,
}

impl ServerBlock {
    /// How views name it: its first name, or what it is.
    pub fn label(&self) -> String {
        match self.names.first() {
            Some(n) if !n.to_string().is_empty() => n.to_string(),
            _ if self.implicit => "(top-level routes)".to_string(),
            _ => "(no name)".to_string(),
        }
    }
}

/// Every server, and each listener's table of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Servers {
    pub list: Vec<ServerBlock>,
    /// By listener index; the default server of each is its `default`.
    pub tables: Vec<Table>,
}

impl Servers {
    /// The server `host` ([`super::normal_host`]'s form) selects on
    /// listener `listener`; `None`: no server is on it.
    pub fn select(&self, listener: usize, host: Option<&str>) -> Option<usize> {
        self.tables.get(listener)?.select(host)
    }

    /// Whether the file has server blocks (and so route names get a server).
    pub fn named(&self) -> bool {
        self.list.iter().any(|s| !s.implicit)
    }

    /// Servers no request can reach: without names, and the default
    /// server of none of their listeners (for `config check` to warn).
    pub fn unreachable(&self) -> Vec<String> {
        let implicit = usize::from(self.list.first().is_some_and(|s| s.implicit));
        self.list
            .iter()
            .enumerate()
            .filter(|(i, s)| {
                s.names.is_empty()
                    && !s.routes.is_empty()
                    && s.listen.iter().all(|&l| self.tables[l].default != Some(*i))
            })
            .map(|(i, s)| match s.implicit {
                true => "the top-level routes are never used: every listener has a [[server]] \
                         with default_server = true"
                    .to_string(),
                false => format!(
                    "[[server]] number {} (without server_name) is never used: it is the \
                     default server of none of its listeners",
                    i + 1 - implicit
                ),
            })
            .collect()
    }

    /// The server that owns route `index`.
    pub fn of_route(&self, index: usize) -> Option<&ServerBlock> {
        self.list.iter().find(|s| s.routes.contains(&index))
    }
}

impl super::Config {
    /// How views and metrics name route `index`: [`Route::name`], after
    /// its server's name for a `[[server]]`'s route (two servers' `/api/`
    /// are two routes); top-level routes keep their names.
    pub fn route_name(&self, index: usize) -> String {
        let name = self.routes.get(index).map_or_else(String::new, Route::name);
        match self.servers.of_route(index) {
            Some(s) if !s.implicit => format!("{} {name}", s.label()),
            _ => name,
        }
    }
}

/// Builds the servers: the top-level routes' (already in `routes`) and
/// the `[[server]]` sections', whose routes are appended to `routes`.
/// ServerBlock certificates are added to their listeners.
pub(super) fn servers(
    loc: &Locator,
    known: &Known,
    listeners: &mut [Listener],
    raw: Vec<Spanned<FileServerBlock>>,
    routes: &mut Vec<Route>,
) -> Result<Servers, ConfigError> {
    let all: Vec<usize> = (0..listeners.len()).collect();
    let mut list = Vec::new();
    if raw.is_empty() || !routes.is_empty() {
        list.push(ServerBlock {
            names: Vec::new(),
            listen: all.clone(),
            routes: 0..routes.len(),
            implicit: true,
            tls: Vec::new(),
        });
    }
    let mut tables: Vec<Table> = vec![Table::default(); listeners.len()];
    // The span of each server, and of its `default_server = true`.
    let mut spans = Vec::new();
    for block in raw {
        let span = block.span();
        let b = block.into_inner();
        let index = list.len();
        let listen = match &b.listen {
            None => all.clone(),
            Some(l) => {
                if l.get_ref().is_empty() {
                    return Err(loc.error(l.span(), "listen: name at least one [[listener]]"));
                }
                l.get_ref()
                    .iter()
                    .map(|r| reference(loc, listeners, r))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let mut names = Vec::new();
        for n in b.server_name.iter().flat_map(|v| v.get_ref()) {
            let name = ServerName::parse(n.get_ref()).map_err(|e| loc.error(n.span(), e))?;
            for &l in &listen {
                tables[l].add(&name, index).map_err(|other| {
                    let (line, _) = line_col(loc.text, spans_of(&spans, other, &list));
                    loc.error(
                        n.span(),
                        format!(
                            "server_name `{}` is already on listener {} (the server at line {line})",
                            n.get_ref(),
                            listener_name(&listeners[l]),
                        ),
                    )
                })?;
            }
            names.push(name);
        }
        let tls = match b.tls {
            None => Vec::new(),
            Some(t) => certs(loc, known.base, t, &listen, listeners)?,
        };
        let start = routes.len();
        for r in b.route {
            routes.push(route::route(loc, known, r)?);
        }
        let default = b.default_server.filter(|d| *d.get_ref()).map(|d| d.span());
        spans.push((span, default));
        list.push(ServerBlock {
            names,
            listen,
            routes: start..routes.len(),
            implicit: false,
            tls,
        });
    }
    let offset = list.len() - spans.len();
    for (l, table) in tables.iter_mut().enumerate() {
        let on = |s: &ServerBlock| s.listen.contains(&l);
        let mut chosen: Option<usize> = None;
        for (i, (_, default)) in spans.iter().enumerate() {
            let server = i + offset;
            let Some(at) = default else { continue };
            if !on(&list[server]) {
                continue;
            }
            if let Some(first) = chosen {
                let (line, _) = line_col(loc.text, spans[first - offset].0.start);
                return Err(loc.error(
                    at.clone(),
                    format!(
                        "listener {} has two default servers: this one and the server at line {line}",
                        listener_name(&listeners[l]),
                    ),
                ));
            }
            chosen = Some(server);
        }
        table.default = chosen.or_else(|| list.iter().position(on));
    }
    // ServerBlock certificates go on each listener after its own, the default
    // server's first: without SNI (or with a name none covers), a listener
    // whose own `tls = true` names none serves its default server's.
    for (l, listener) in listeners.iter_mut().enumerate() {
        let Some(tls) = listener.tls.as_mut() else {
            continue;
        };
        let default = tables[l].default;
        let order = default
            .into_iter()
            .chain((0..list.len()).filter(|&i| Some(i) != default));
        for i in order.filter(|&i| list[i].listen.contains(&l)) {
            for c in &list[i].tls {
                if !tls.certs.contains(c) {
                    tls.certs.push(c.clone());
                }
            }
        }
    }
    Ok(Servers { list, tables })
}

/// Where server `index` starts in the file (for messages).
fn spans_of(
    spans: &[(Range<usize>, Option<Range<usize>>)],
    index: usize,
    list: &[ServerBlock],
) -> usize {
    let offset = list.len() - spans.len();
    index
        .checked_sub(offset)
        .and_then(|i| spans.get(i))
        .map_or(0, |s| s.0.start)
}

/// How messages name a listener: its `name`, else its `bind`.
fn listener_name(l: &Listener) -> String {
    match &l.name {
        Some(n) => format!("`{n}`"),
        None => format!("`{}`", l.bind),
    }
}

/// The listener a `listen` entry names: by `name`, else by `bind`.
fn reference(
    loc: &Locator,
    listeners: &[Listener],
    r: &Spanned<String>,
) -> Result<usize, ConfigError> {
    let text = r.get_ref();
    if let Some(i) = listeners
        .iter()
        .position(|l| l.name.as_deref() == Some(text))
    {
        return Ok(i);
    }
    let by_bind: Vec<usize> = match text.parse::<std::net::SocketAddr>() {
        Ok(addr) => (0..listeners.len())
            .filter(|&i| listeners[i].bind == addr)
            .collect(),
        Err(_) => Vec::new(),
    };
    match by_bind[..] {
        [one] => Ok(one),
        [] => {
            let known: Vec<String> = listeners.iter().map(listener_name).collect();
            Err(loc.error(
                r.span(),
                format!(
                    "listen: no [[listener]] named or bound at `{text}` (listeners: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        }
        _ => Err(loc.error(
            r.span(),
            format!(
                "listen: {} listeners are bound at `{text}`; give them a `name` and listen by name",
                by_bind.len()
            ),
        )),
    }
}

/// A server's `tls`: `{ cert, key }` or a list of them, for its TLS listeners.
fn certs(
    loc: &Locator,
    base: &std::path::Path,
    t: Spanned<toml::Value>,
    listen: &[usize],
    listeners: &[Listener],
) -> Result<Vec<CertFiles>, ConfigError> {
    let span = t.span();
    // nginx's `listen 80; listen 443 ssl;` in one server: the certificate
    // is for its TLS listeners; at least one must be.
    if listen.iter().all(|&l| listeners[l].tls.is_none()) {
        let names: Vec<String> = listen
            .iter()
            .map(|&l| listener_name(&listeners[l]))
            .collect();
        return Err(loc.error(
            span,
            format!(
                "tls: none of this server's listeners ({}) is a TLS listener (give one \
                 `tls = true` to serve its servers' certificates)",
                names.join(", ")
            ),
        ));
    }
    let expected = "tls: expected { cert = \"...\", key = \"...\" } or a list of them";
    let tables = match t.into_inner() {
        toml::Value::Table(one) => vec![one],
        toml::Value::Array(many) if !many.is_empty() => many
            .into_iter()
            .map(|v| match v {
                toml::Value::Table(t) => Ok(t),
                _ => Err(loc.error(span.clone(), expected)),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(loc.error(span, expected)),
    };
    tables
        .iter()
        .map(|t| cert_files(loc, base, t, span.clone()))
        .collect()
}

/// Each `tls = true` listener must have received a certificate from a server.
pub(super) fn check_tls(
    loc: &Locator,
    listeners: &[Listener],
    spans: &[Range<usize>],
) -> Result<(), ConfigError> {
    for (l, span) in listeners.iter().zip(spans) {
        if l.tls.as_ref().is_some_and(|t| t.certs.is_empty()) {
            return Err(loc.error(
                span.clone(),
                format!(
                    "listener {}: tls = true, but no [[server]] on it has a tls certificate",
                    listener_name(l)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const LISTENERS: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\nname = \"web\"\n\
                             [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"alt\"\n";

    #[test]
    fn top_level_routes_alone_are_one_default_server() {
        let cfg = parse(&format!("{LISTENERS}[[route]]\nrespond = 200\n")).unwrap();
        let s = &cfg.servers;
        assert_eq!(s.list.len(), 1);
        assert!(s.list[0].implicit && s.list[0].routes == (0..1));
        for l in 0..2 {
            assert_eq!(s.select(l, Some("anything.test")), Some(0));
            assert_eq!(s.select(l, None), Some(0));
        }
    }

    #[test]
    fn default_server_is_marked_else_top_level_else_first_on_the_listener() {
        let servers = "[[server]]\nserver_name = [\"a.test\"]\n[[server.route]]\nrespond = 201\n\
                       [[server]]\nserver_name = [\"b.test\"]\nlisten = [\"alt\"]\n\
                       [[server.route]]\nrespond = 202\n[[server.route]]\nrespond = 203\n";
        let cfg = parse(&format!("{LISTENERS}{servers}")).unwrap();
        let s = &cfg.servers;
        assert_eq!(s.list.len(), 2, "no top-level routes: no implicit server");
        assert_eq!(s.list[0].routes, 0..1);
        assert_eq!(s.list[1].routes, 1..3);
        assert_eq!(s.list[1].listen, [1]);
        // `web` has only a.test; `alt` has both, a.test first.
        assert_eq!(s.select(0, Some("b.test")), Some(0));
        assert_eq!(s.select(1, Some("b.test")), Some(1));
        assert_eq!(s.select(1, Some("other.test")), Some(0));
        // `default_server = true` wins over the first.
        let marked = servers.replace(
            "listen = [\"alt\"]\n",
            "listen = [\"alt\"]\ndefault_server = true\n",
        );
        let cfg = parse(&format!("{LISTENERS}{marked}")).unwrap();
        assert_eq!(cfg.servers.select(1, Some("other.test")), Some(1));
        assert_eq!(cfg.servers.select(0, Some("other.test")), Some(0));
        // Top-level routes are the default server beside server blocks.
        let cfg = parse(&format!("{LISTENERS}[[route]]\nrespond = 404\n{servers}")).unwrap();
        let s = &cfg.servers;
        assert_eq!(s.list.len(), 3);
        assert!(s.list[0].implicit);
        assert_eq!(s.list[2].routes, 2..4);
        assert_eq!(s.select(1, Some("other.test")), Some(0));
        assert_eq!(s.select(1, Some("a.test")), Some(1));
        assert_eq!(s.select(1, Some("b.test")), Some(2));
    }

    #[test]
    fn servers_no_request_reaches_are_named() {
        let cfg = parse(&format!(
            "{LISTENERS}[[route]]\nrespond = 404\n\
             [[server]]\nserver_name = [\"a.test\"]\ndefault_server = true\n[[server.route]]\nrespond = 200\n\
             [[server]]\n[[server.route]]\nrespond = 204\n"
        ))
        .unwrap();
        let warned = cfg.servers.unreachable();
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].starts_with("the top-level routes are never used"));
        assert!(
            warned[1].starts_with("[[server]] number 2 (without server_name) is never used"),
            "{warned:?}"
        );
        // Without default_server, the top-level routes are the default.
        let cfg = parse(&format!(
            "{LISTENERS}[[route]]\nrespond = 404\n[[server]]\nserver_name = [\"a.test\"]\n"
        ))
        .unwrap();
        assert!(cfg.servers.unreachable().is_empty());
    }

    #[test]
    fn listen_names_a_listener_by_name_or_bind() {
        let text = "[[listener]]\nbind = \"127.0.0.1:8080\"\n[[listener]]\nbind = \"127.0.0.1:8081\"\n\
                    [[server]]\nlisten = [\"127.0.0.1:8081\"]\n";
        assert_eq!(parse(text).unwrap().servers.list[0].listen, [1]);
    }

    #[test]
    fn bad_servers_are_refused_with_their_place() {
        let cases = [
            (
                "[[server]]\nserver_name = [\"a.test\"]\n[[server]]\nserver_name = [\"x.test\", \"A.test\"]\n",
                "t.toml:10:26: server_name `A.test` is already on listener `web` (the server at line 7)",
            ),
            (
                "[[server]]\nlisten = [\"web\", \"nope\"]\n",
                "t.toml:8:18: listen: no [[listener]] named or bound at `nope` (listeners: `web`, `alt`)",
            ),
            (
                "[[server]]\nlisten = [\"127.0.0.1:0\"]\n",
                "t.toml:8:11: listen: 2 listeners are bound at `127.0.0.1:0`; give them a `name` and listen by name",
            ),
            (
                "[[server]]\nserver_name = [\"~^api(\\\\d+\"]\n",
                "t.toml:8:16: server_name `~^api(\\d+`: the regex does not compile",
            ),
            (
                "[[server]]\nserver_name = [\"a.*.test\"]\n",
                "t.toml:8:16: server_name `a.*.test`: expected a host name",
            ),
            (
                "[[server]]\ndefault_server = true\n[[server]]\nlisten = [\"alt\"]\ndefault_server = true\n",
                "t.toml:11:18: listener `alt` has two default servers: this one and the server at line 7",
            ),
            (
                "[[server]]\ntls = { cert = \"a.crt\", key = \"a.key\" }\n",
                "t.toml:8:7: tls: none of this server's listeners (`web`, `alt`) is a TLS listener",
            ),
            (
                "[[server]]\nbogus = 1\n",
                "t.toml:8:1: unknown field `bogus`",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|(servers, want)| {
                let e = parse(&format!("{LISTENERS}{servers}")).unwrap_err();
                (!e.starts_with(want)).then(|| format!("{servers}\n got: {e}\nwant: {want}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
        // The same name on two listeners is two servers' right.
        parse(&format!(
            "{LISTENERS}[[server]]\nserver_name = [\"a.test\"]\nlisten = [\"web\"]\n\
             [[server]]\nserver_name = [\"a.test\"]\nlisten = [\"alt\"]\n"
        ))
        .unwrap();
        // `tls = true` needs a server's certificate.
        let e = parse("[[listener]]\nbind = \"127.0.0.1:0\"\ntls = true\n").unwrap_err();
        assert!(
            e.starts_with("t.toml:1:1: listener `127.0.0.1:0`: tls = true, but no [[server]]"),
            "{e}"
        );
    }

    #[test]
    fn server_certificates_go_on_its_tls_listeners_default_first() {
        let dir = std::env::temp_dir().join(format!("rampart-server-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["a", "b"] {
            let c = rcgen::generate_simple_self_signed(vec![format!("{name}.test")]).unwrap();
            std::fs::write(dir.join(format!("{name}.crt")), c.cert.pem()).unwrap();
            std::fs::write(
                dir.join(format!("{name}.key")),
                c.signing_key.serialize_pem(),
            )
            .unwrap();
        }
        // nginx's `listen 80; listen 443 ssl;` in each server; b is the default.
        let text = "[[listener]]\nbind = \"127.0.0.1:0\"\nname = \"plain\"\n\
                    [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"tls\"\ntls = true\n\
                    [[server]]\nserver_name = [\"a.test\"]\ntls = { cert = \"a.crt\", key = \"a.key\" }\n\
                    [[server]]\nserver_name = [\"b.test\"]\ndefault_server = true\n\
                    tls = { cert = \"b.crt\", key = \"b.key\" }\n";
        let cfg = Config::parse(text, &dir.join("t.toml")).unwrap();
        assert!(cfg.listeners[0].tls.is_none());
        let certs: Vec<_> = cfg.listeners[1]
            .tls
            .as_ref()
            .unwrap()
            .certs
            .iter()
            .map(|c| c.cert.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(
            certs,
            ["b.crt", "a.crt"],
            "the default server's first: served without SNI"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
