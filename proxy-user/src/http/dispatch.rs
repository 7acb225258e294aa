//! What answers a request: the checks before routing (a refused head, a
//! ban behind a proxy, the virtual host, a redirect listener, the target's
//! length and path), routing and its rewrites, limits, access rules,
//! authentication, and the route's action.

use std::{
    borrow::Cow,
    future::Future,
    ops::ControlFlow::{Break, Continue},
};

use hyper::{
    Request, StatusCode,
    header::{self, HeaderValue},
};

use super::{
    CLOSE, ConnInfo, ProxyError, RefusedHead, RequestBody, State, auth_request,
    forward::Upstream,
    proxy, real_ip,
    reply::Reply,
    request::{https_location, request_vars, with_path},
    request_map,
    response::{closed, error_response, redirect, text},
    static_files, vhost,
};
use crate::{
    config::Action,
    limit::{self, Decision, Limiter},
    path,
    template::{Template, Vars},
};

#[allow(clippy::manual_async_fn)] // the captures are not moved into locals
pub(super) fn dispatch(
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
                &request_vars(conn, host, request_id, original.as_ref(), &req),
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
        // Answered here (`Break`), or by an upstream group (`Continue`): a
        // proxy route's, or a static route's `try_files` fallback.
        let upstream = match &route.action {
            Action::Respond { status: CLOSE, .. } => Break(Ok(closed().into())),
            Action::Respond { status, body } => {
                let vars = || request_vars(conn, host, request_id, original.as_ref(), &req);
                Break(Ok(text(
                    status_or(*status, StatusCode::OK),
                    &filled(body, vars),
                )
                .into()))
            }
            Action::Redirect { to, status } => {
                let vars = || request_vars(conn, host, request_id, original.as_ref(), &req);
                let location = filled(to, vars);
                Break(Ok(redirect(
                    status_or(*status, StatusCode::FOUND),
                    &location,
                )
                .into()))
            }
            Action::Static { .. } => match static_files::StaticRoute::of(route) {
                Some(sr) => match static_files::try_files::resolve(&sr, req.uri().path()).await {
                    Ok(static_files::try_files::Outcome::Serve(path)) => Break(
                        static_files::serve(&sr, req.method(), &path, req.headers())
                            .await
                            .map(Reply::from),
                    ),
                    Ok(static_files::try_files::Outcome::Status(status)) => {
                        Break(Err(ProxyError::downstream(status, "try_files: no file")))
                    }
                    Ok(static_files::try_files::Outcome::Upstream(upstream)) => Continue(upstream),
                    Err(e) => Break(Err(e)),
                },
                None => Break(Err(ProxyError::Internal(
                    "a static route without files".into(),
                ))),
            },
            Action::Proxy { upstream } => Continue(upstream.as_str()),
        };
        let result = match upstream {
            Break(answer) => answer,
            Continue(upstream) => {
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

/// `template` filled in with the request's variables, made only when it
/// has any: a literal one is its own text, borrowed.
fn filled<'t, 'v>(template: &'t Template, vars: impl FnOnce() -> Vars<'v>) -> Cow<'t, str> {
    match template.literal() {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(template.render(&vars())),
    }
}

/// A route's configured status, or `otherwise` if it is not one.
fn status_or(status: u16, otherwise: StatusCode) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(otherwise)
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
