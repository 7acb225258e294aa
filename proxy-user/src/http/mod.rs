//! The request path of the L7 tier.
//!
//! ```text
//! request -> id -> [redirect_https listener: 301] -> URI length (414)
//!         -> normalised path (400 if it has none; see [`path`])
//!         -> route (first match, 404 if none) -> limits (429 / delay)
//!         -> respond | redirect | static files | proxy to an upstream group
//!         -> X-Request-Id on the response, access log line
//! ```
//!
//! [`State`] is an immutable snapshot built from one configuration; a reload
//! builds a new one off to the side and swaps it in, and every request uses
//! the snapshot that was current when it arrived.

pub mod auth_request;
pub mod basic_auth;
mod body;
pub mod budget;
mod compress;
mod error;
pub mod error_page;
mod forward;
mod head_buf;
pub mod header_rules;
pub mod headers;
mod proxy;
mod raw_head;
pub mod real_ip;
pub mod reply;
mod request;
pub mod request_body;
mod request_headers;
pub mod request_map;
mod response;
pub mod rewrite;
pub mod route;
mod services;
mod state;
pub mod static_files;
mod switches;
pub mod upgrade;
pub use services::Services;
pub use state::{SharedState, State};
pub use switches::Switches;
pub mod vhost;
pub mod websocket;

use std::{borrow::Cow, future::Future, net::SocketAddr, sync::Arc, time::Instant};

use bytes::Bytes;
pub use error::{ProxyError, UpstreamFailure};
use forward::Upstream;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{
    Request, StatusCode,
    header::{self, HeaderValue},
};
pub use reply::{Forwarded, ForwardedBody, Reply};
use request::{host_of, https_location, vars_of, with_path};
pub use request_body::RequestBody;
pub use response::{CLOSE, Closed};
use response::{closed, error_response, redirect, text};

use crate::{
    access_log,
    config::Action,
    limit::{self, Decision, Limiter},
    metrics::Observed,
    path, template,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body: buffered, a file, or an upstream's stream.
pub type Body = BoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// What the connection knows about the client.
#[derive(Clone, Copy, Debug)]
pub struct ConnInfo {
    pub client: SocketAddr,
    pub https: bool,
    /// This listener answers everything with a redirect to https on this port.
    pub redirect_https: Option<u16>,
    /// The port the connection came in on (`$server_port`).
    pub server_port: u16,
    /// The trusted proxy (or PROXY protocol sender) that named `client`;
    /// `None`: `client` is the peer ([`real_ip`]).
    pub via: Option<std::net::IpAddr>,
    /// The listener's index in the configuration: whose servers it has.
    pub listener: usize,
    /// The server the TLS SNI name selected; a request whose host selects
    /// another is answered 421 ([`vhost`]).
    pub sni_server: Option<usize>,
}

/// How `rampart stats` names requests answered without a route: none
/// matched, a redirect listener, or refused before routing (400, 414).
pub const NO_ROUTE: &str = "(unrouted)";

/// Marks a request whose HTTP/1 head the connection guard refused: 400 for
/// ambiguous framing (`Content-Length` with `Transfer-Encoding`, or
/// repeated), 414 for a request line over `max_header_line`, 431 for a
/// header line over it or more than `max_headers` headers. It is answered
/// with `status` and the connection closed, whatever its route.
#[derive(Clone, Copy, Debug)]
pub struct RefusedHead {
    pub status: u16,
    pub why: &'static str,
}

/// Serves one request. Never fails: errors become responses.
#[allow(clippy::manual_async_fn)] // the captures are not moved into locals
pub fn handle(
    state: Arc<State>,
    conn: ConnInfo,
    mut req: Request<RequestBody>,
) -> impl Future<Output = Reply> + use<> {
    // Not an `async fn`: its arguments are the block's captures, used
    // where they are, where an `async fn` moves each into a local of its
    // own first (a `memcpy` of the request, some hundred bytes).
    async move {
        let started = Instant::now();
        // An HTTP/1 request comes without its header map: built here when
        // something before routing (or the response's rules, or the log) reads
        // it, else only if its route does (`dispatch`).
        if state.config.request_map_early {
            request_map::materialise(&mut req);
        }
        let conn = match &state.config.http.real_ip {
            None => conn,
            Some(r) => real_ip::apply(r, conn, req.headers()),
        };
        let request_headers::Values {
            host: host_value,
            content_length,
            request_id: sent_id,
            referer,
            user_agent,
            accept_encoding,
        } = request_headers::Values::of(&req);
        let request_id = headers::request_id(sent_id.as_ref());
        drop(sent_id);
        // What the access log needs, kept as cheap clones (reference-counted
        // bytes): strings are only made for requests that are logged.
        let (method, version, uri) = (req.method().clone(), req.version(), req.uri().clone());
        let bytes_in = content_length
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        // Borrowed from the request's own Host (or target) in the usual case.
        let host = host_of(&uri, host_value.as_ref());
        let accept = (state.config.compress_any)
            .then_some(accept_encoding)
            .flatten();
        let kept_headers = state
            .config
            .keep_request_headers
            .then(|| req.headers().clone());
        // Which server answered, when one did: beside the response rather
        // than in its extensions (a map allocated per response).
        let mut answered: Option<proxy::UpstreamInfo> = None;
        let (result, index) = if state.services.maintenance.on() {
            // A capture is dropped with the future, after the response is
            // written: the request (and its body) go here, as a local did.
            drop(req);
            (
                Ok(error_page::maintenance(&state.config.error_pages).into()),
                None,
            )
        } else {
            let host = host.as_deref();
            // `pin!`: the future built where it is awaited, not built and
            // moved there (a `memcpy` of its size per request).
            std::pin::pin!(dispatch(
                &state,
                conn,
                &request_id,
                host,
                &mut answered,
                req
            ))
            .await
        };
        let route = index.map(|i| &state.config.routes[i]);
        let log_it = !state.config.http.access_log_off && route.is_none_or(|r| r.access_log);
        let mut resp = result.unwrap_or_else(|e| error_response(&e).into());
        // `respond = 444`: logged and counted, never sent (no page, no encoding).
        let unsent = resp.is_closed();
        if !unsent && resp.status().as_u16() >= 400 {
            // The route's pages; a request no route took gets its server's.
            let pages = match route {
                Some(r) => &r.error_pages,
                None if state.services.maintenance.on() => &state.config.error_pages,
                None => vhost::server(&state.config, &conn, host.as_deref())
                    .ok()
                    .flatten()
                    .and_then(|s| state.config.servers.list.get(s))
                    .map_or(&state.config.error_pages, |s| &s.error_pages),
            };
            if !pages.is_empty() {
                resp = error_page::apply(pages, resp.into_response(), answered.is_some()).into();
            }
        }
        state.route_metrics(index).observe(&Observed {
            status: resp.status().as_u16(),
            total: started.elapsed(),
            upstream: answered.map(|u| u.time),
            bytes_in,
            bytes_out: resp.content_length().unwrap_or(0),
        });
        if let Some(r) = route
            && !r.escalate.is_empty()
        {
            state.escalation.observe(
                r,
                crate::source::key(conn.client.ip(), state.config.ipv6_prefix()),
                resp.status().as_u16(),
                tokio::time::Instant::now(),
            );
        }
        let compression = match route {
            Some(r) => r.compress.as_deref(),
            None => state.config.compress.as_ref(),
        };
        if let Some(c) = compression.filter(|_| !unsent) {
            let asked = compress::Asked::of_accept(c, &method, accept.as_ref());
            resp = compress::response(c, asked, resp.into_response()).into();
        }
        resp.set_request_id(request_id.clone());
        let rules = match route {
            Some(r) => r.headers.as_deref(),
            None => state.config.headers.unrouted.as_deref(),
        };
        if let Some(rules) = rules {
            let normal = path::normalise(uri.path()).unwrap_or(Cow::Borrowed(uri.path()));
            let vars = template::Vars {
                uri: &normal,
                headers: kept_headers.as_ref(),
                ..vars_of(conn, host.as_deref(), &request_id, None, &uri)
            };
            let status = resp.status();
            rules.on_response(resp.map().headers_mut(), status, &vars);
        }
        if log_it {
            let text = |v: &Option<HeaderValue>| {
                v.as_ref()
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let target = uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |p| p.to_string());
            let version = format!("{version:?}");
            let (referer, user_agent) = (text(&referer), text(&user_agent));
            let entry = access_log::Entry {
                client: conn.client.ip(),
                method: method.as_str(),
                target: &target,
                version: &version,
                host: host.as_deref().unwrap_or(""),
                https: conn.https,
                status: resp.status().as_u16(),
                bytes: resp.content_length(),
                request_time: started.elapsed(),
                upstream: answered.as_ref().map(|u| (&u.addr, u.time)),
                request_id: request_id.to_str().unwrap_or(""),
                referer: &referer,
                user_agent: &user_agent,
                headers: kept_headers.as_ref(),
            };
            match &state.access_log {
                Some(log) => log.write(&entry),
                None => {
                    log::info!(target: "access", "{}", access_log::line(&state.config.http.access_log_format, &entry).trim_end())
                }
            }
        }
        resp
    }
}

#[allow(clippy::manual_async_fn)] // the captures are not moved into locals
fn dispatch(
    state: &State,
    conn: ConnInfo,
    request_id: &HeaderValue,
    host: Option<&str>,
    answered: &mut Option<proxy::UpstreamInfo>,
    mut req: Request<RequestBody>,
) -> impl Future<Output = (Result<Reply, ProxyError>, Option<usize>)> {
    // Not an `async fn`: see `handle`.
    async move {
        if let Some(&RefusedHead { status, why }) = req.extensions().get::<RefusedHead>() {
            log::warn!("{}: {why}: answered {status} and closed", conn.client);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = error_response(&ProxyError::downstream(status, why));
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return (Ok(resp.into()), None);
        }
        if real_ip::refused(&state.services.gate, &conn) {
            // Banned behind a trusted proxy: refused here, the proxy's own
            // address never is (docs/kernel-tier.md, "Behind a proxy").
            log::debug!("{} via {:?}: banned: 403", conn.client, conn.via);
            return (
                Err(ProxyError::downstream(StatusCode::FORBIDDEN, "banned")),
                None,
            );
        }
        let server = match vhost::server(&state.config, &conn, host) {
            Ok(s) => s,
            Err(e) => return (Err(e), None),
        };
        if let Some(port) = conn.redirect_https {
            let Some(host) = host else {
                return (
                    Err(ProxyError::downstream(
                        StatusCode::BAD_REQUEST,
                        "no Host header",
                    )),
                    None,
                );
            };
            // `redirect_https_host`: nginx's `https://$server_name...`.
            let host = (state.config.listeners.get(conn.listener))
                .and_then(|l| l.redirect_https_host.as_deref())
                .unwrap_or(host);
            return (
                Ok(redirect(
                    StatusCode::MOVED_PERMANENTLY,
                    &https_location(host, port, req.uri()),
                )
                .into()),
                None,
            );
        }
        let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if uri_len > state.config.http.max_uri_length {
            return (
                Err(ProxyError::downstream(
                    StatusCode::URI_TOO_LONG,
                    format!("request target of {uri_len} bytes"),
                )),
                None,
            );
        }
        // The one path routing, limits, escalation, static files and the
        // upstream see; `$request_uri` in a redirect keeps the original. A path
        // already normal (the usual case) is left where it is: no copy.
        let mut original = match path::normalise(req.uri().path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(normal)) => {
                let original = req.uri().path_and_query().cloned();
                match with_path(req.uri(), &normal) {
                    Ok(uri) => *req.uri_mut() = uri,
                    Err(e) => return (Err(e), None),
                }
                original
            }
            Err(e) => {
                return (
                    Err(ProxyError::downstream(
                        StatusCode::BAD_REQUEST,
                        format!("path: {e}"),
                    )),
                    None,
                );
            }
        };
        let index = match vhost::find_rewritten(
            state,
            conn,
            server,
            host,
            request_id,
            &mut original,
            &mut req,
        ) {
            Ok(i) => i,
            Err((e, i)) => return (Err(e), i),
        };
        let route = &state.config.routes[index];
        if reads_headers(route) {
            request_map::materialise(&mut req);
        }
        if !route.limits.is_empty() {
            let zones: Vec<&Limiter> = route
                .limits
                .iter()
                .filter_map(|n| state.limiters.get(n).map(|l| &**l))
                .collect();
            // Keyed by source: an IPv6 client's whole prefix shares one budget.
            let source = crate::source::key(conn.client.ip(), state.config.ipv6_prefix());
            match limit::check(&zones, source, tokio::time::Instant::now()) {
                Decision::Pass => {}
                Decision::Delay(d) => tokio::time::sleep(d).await,
                Decision::Reject {
                    status,
                    retry_after_s,
                } => {
                    let mut resp = text(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
                        "too many requests\n",
                    );
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                    return (Ok(resp.into()), Some(index));
                }
            }
        }
        if let Some(rw) = route.rewrite.as_ref().filter(|r| !r.is_last()) {
            let rewritten = rw.apply(
                req.uri(),
                &vars_of(conn, host, request_id, original.as_ref(), req.uri()).with(req.headers()),
            );
            match rewritten {
                Ok(None) => {}
                Ok(Some(uri)) => {
                    // `$request_uri` stays the target as received.
                    if original.is_none() {
                        original = req.uri().path_and_query().cloned();
                    }
                    *req.uri_mut() = uri;
                }
                Err(e) => return (Err(e), Some(index)),
            }
        }
        // nginx's access phase, after limit_req's: a client refused here has
        // spent its limit budget, so password guessing is rate-limited too.
        if !route.access.is_empty() && !route.access.allows(conn.client.ip()) {
            log::debug!(
                "{}: {}: refused by the route's access rules",
                conn.client,
                req.uri().path()
            );
            return (
                Err(ProxyError::downstream(
                    StatusCode::FORBIDDEN,
                    "access rules",
                )),
                Some(index),
            );
        }
        if let Some(auth) = &route.basic_auth
            && let Err(resp) = auth.check(req.headers()).await
        {
            return (Ok(resp.into()), Some(index));
        }
        // What the auth service lets through, set on a proxied request.
        let mut authorised = None;
        if let Some(ar) = &route.auth_request {
            match auth_request::check(state, ar, &conn, &req).await {
                Ok(set) => authorised = Some((ar, set)),
                Err(resp) => return (Ok(resp.into()), Some(index)),
            }
        }
        let result = match &route.action {
            Action::Respond { status: CLOSE, .. } => Ok(closed().into()),
            Action::Respond { status, body } => {
                let body = match body.literal() {
                    Some(b) => Cow::Borrowed(b),
                    None => Cow::Owned(
                        body.render(
                            &vars_of(conn, host, request_id, original.as_ref(), req.uri())
                                .with(req.headers()),
                        ),
                    ),
                };
                Ok(text(
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
                    &body,
                )
                .into())
            }
            Action::Redirect { to, status } => {
                let location = to.render(
                    &vars_of(conn, host, request_id, original.as_ref(), req.uri())
                        .with(req.headers()),
                );
                Ok(redirect(
                    StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
                    &location,
                )
                .into())
            }
            Action::Static { .. } => match static_files::StaticRoute::of(route) {
                Some(sr) => match static_files::try_files::resolve(&sr, req.uri().path()).await {
                    Ok(static_files::try_files::Outcome::Serve(path)) => {
                        static_files::serve(&sr, req.method(), &path, req.headers())
                            .await
                            .map(Reply::from)
                    }
                    Ok(static_files::try_files::Outcome::Status(status)) => {
                        Err(ProxyError::downstream(status, "try_files: no file"))
                    }
                    Ok(static_files::try_files::Outcome::Upstream(upstream)) => {
                        let to = Upstream {
                            state,
                            conn,
                            request_id,
                            original: original.as_ref(),
                            answered,
                        };
                        std::pin::pin!(to.forward(upstream, route, authorised, req)).await
                    }
                    Err(e) => Err(e),
                },
                None => Err(ProxyError::Internal("a static route without files".into())),
            },
            Action::Proxy { upstream } => {
                let to = Upstream {
                    state,
                    conn,
                    request_id,
                    original: original.as_ref(),
                    answered,
                };
                std::pin::pin!(to.forward(upstream, route, authorised, req)).await
            }
        };
        if let Err(e) = &result {
            match e {
                ProxyError::Downstream { .. } => log::debug!("{e}"),
                _ => log::warn!("{e}"),
            }
        }
        (result, Some(index))
    }
}

/// Whether `route` reads the request's headers once routed (what the
/// whole request path reads is `Config::request_map_early`): its basic
/// auth, `auth_request`, static files (and their `try_files` fallback), a
/// redirect's or a response's template. A proxied request reads only
/// the parse's values, unless it is an upgrade (`forward`).
fn reads_headers(route: &crate::config::Route) -> bool {
    route.basic_auth.is_some()
        || route.auth_request.is_some()
        || match &route.action {
            Action::Proxy { .. } => false,
            Action::Respond { body, .. } => body.literal().is_none(),
            Action::Redirect { .. } | Action::Static { .. } => true,
        }
}
