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

use toml::Spanned;

use super::{
    CertFiles, ConfigError, Listener, Route,
    error::{Locator, line_col},
    file::FileServerBlock,
    listener::cert_files,
    route::{self, Known},
    server_name::{ServerName, Table},
};

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
    /// Its error pages (`error_page`, else `[[error_page]]`): its routes'
    /// default, and what a request that matches none of them gets.
    pub error_pages: super::error_page::ErrorPages,
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
            error_pages: known.error_pages.clone(),
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
        let error_pages =
            super::error_page::route(loc, known.base, b.error_page, known.error_pages)?;
        let own = Known {
            error_pages: &error_pages,
            ..*known
        };
        let start = routes.len();
        for r in b.route {
            routes.push(route::route(loc, &own, r)?);
        }
        let default = b.default_server.filter(|d| *d.get_ref()).map(|d| d.span());
        spans.push((span, default));
        list.push(ServerBlock {
            names,
            listen,
            routes: start..routes.len(),
            implicit: false,
            tls,
            error_pages,
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
#[path = "server_tests.rs"]
mod tests;
