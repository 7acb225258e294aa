//! Virtual hosts on the request path: the `[[server]]` of the request's
//! listener that its host selects (see [`crate::config::Servers`]), and
//! the route among that server's routes only. On TLS, the server the SNI
//! name selected at the handshake must be the one the host selects, or the
//! request is answered 421 Misdirected Request (RFC 9110 §15.5.20), as
//! nginx does: a client that reuses one connection for several names
//! (HTTP/2 connection coalescing) never reaches another server's routes
//! through it, and retries on a connection of its own.

use hyper::{Request, StatusCode, header::HeaderValue, http::uri::PathAndQuery};

use super::{ConnInfo, ProxyError, State, route::MAX_REWRITES};
use crate::config::{Config, normal_host};

/// The server for a request with `host` (as [`super::request::host_of`] gives it)
/// on `conn`; `None`: no server is on the listener. `Err`: 421.
pub fn server(
    config: &Config,
    conn: &ConnInfo,
    host: Option<&str>,
) -> Result<Option<usize>, ProxyError> {
    let servers = &config.servers;
    // One server (a file without `[[server]]`): nothing to choose.
    if servers.list.len() == 1 {
        return Ok(Some(0));
    }
    let host = host.map(normal_host);
    let chosen = servers.select(conn.listener, host.as_deref());
    if let Some(sni) = conn.sni_server
        && chosen != Some(sni)
    {
        let name = |s: Option<usize>| {
            s.and_then(|s| servers.list.get(s))
                .map_or_else(|| "none".to_string(), |s| s.label())
        };
        return Err(ProxyError::downstream(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "host {:?} selects server {}, the TLS SNI name selected {}",
                host.as_deref().unwrap_or(""),
                name(chosen),
                name(Some(sni)),
            ),
        ));
    }
    Ok(chosen)
}

/// The route (an index of `config.routes`) for `path` among `server`'s routes.
pub fn route(
    config: &Config,
    server: Option<usize>,
    host: Option<&str>,
    path: &str,
    holds: &dyn Fn(&crate::config::condition::Condition) -> bool,
) -> Option<usize> {
    let range = config.servers.list.get(server?)?.routes.clone();
    let start = range.start;
    super::route::find_when(&config.routes[range], host, path, holds).map(|i| i + start)
}

/// The server the SNI name of a TLS connection on `listener` selects;
/// `None` without SNI (or with one server only: nothing to check).
pub fn by_sni(config: &Config, listener: usize, sni: Option<&str>) -> Option<usize> {
    if config.servers.list.len() == 1 {
        return None;
    }
    config.servers.select(listener, Some(&normal_host(sni?)))
}
/// The route for `req`, after nginx's `rewrite ... last`: while the
/// route found has a `last` rewrite that matches, the path is rewritten
/// (`original` keeps the target as received) and the routes are searched
/// again, at most [`super::route::MAX_REWRITES`] times (500 after, as nginx). `Err`
/// carries the answer and the route it came from.
pub(super) fn find_rewritten<B>(
    state: &State,
    conn: ConnInfo,
    server: Option<usize>,
    host: Option<&str>,
    request_id: &HeaderValue,
    original: &mut Option<PathAndQuery>,
    req: &mut Request<B>,
) -> Result<usize, (ProxyError, Option<usize>)> {
    let routes = &state.config.routes;
    let mut changes = 0;
    loop {
        let vars = || super::request::request_vars(conn, host, request_id, original.as_ref(), req);
        // The variables are made only for a route with an `if`.
        let method = req.method().as_str();
        let holds = |c: &crate::config::condition::Condition| c.holds(method, &vars());
        let Some(i) = route(&state.config, server, host, req.uri().path(), &holds) else {
            return Err((
                ProxyError::downstream(StatusCode::NOT_FOUND, "no route"),
                None,
            ));
        };
        let Some(rw) = routes[i].rewrite.as_ref().filter(|r| r.is_last()) else {
            return Ok(i);
        };
        let vars = vars();
        let uri = match rw.apply(req.uri(), &vars) {
            Ok(None) => return Ok(i),
            Ok(Some(uri)) => uri,
            Err(e) => return Err((e, Some(i))),
        };
        if changes == MAX_REWRITES {
            return Err((
                ProxyError::Internal(format!(
                    "rewrite cycle: more than {MAX_REWRITES} rewrites with last"
                )),
                Some(i),
            ));
        }
        changes += 1;
        if original.is_none() {
            *original = req.uri().path_and_query().cloned();
        }
        *req.uri_mut() = uri;
    }
}
