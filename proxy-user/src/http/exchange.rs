//! One request's way through the request path, around what answers it
//! ([`super::dispatch`]): its id, the values the log and the response's
//! rules read, error pages, metrics, escalation, compression, the
//! response's header rules and the access log line.

use std::{borrow::Cow, future::Future, sync::Arc, time::Instant};

use hyper::{Request, header::HeaderValue};

use super::{
    ConnInfo, RequestBody, State, compress, dispatch::dispatch, error_page, headers, proxy,
    real_ip, reply::Reply, request::host_of, request::vars_of, request_headers, request_map,
    response::error_response, vhost,
};
use crate::{access_log, metrics::Observed, path, template};

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
