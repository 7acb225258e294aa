//! Forwarding a request to an upstream group: the body is read in full first
//! (up to the route's limit) so a slow uploader never holds an upstream
//! connection; a server is leased by the group's balancing rule; a failed
//! connect is retried on another server, and so is an idempotent request
//! after a 502/503/504 or a timeout, within the group's retry budget.
//! WebSocket upgrades become a tunnel with an idle timeout.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::{
    Method, Request, StatusCode, Version,
    body::Frame,
    header::{self, HeaderValue},
};

use super::{
    BoxError, ProxyError, body,
    error::UpstreamFailure,
    head_buf::HeadBuf,
    headers::{self, X_REQUEST_ID},
    raw_head,
    reply::{Forwarded, ForwardedBody, Reply},
};
use crate::{
    config::{Route, header_rules::HeaderRules},
    template::{Vars, bare_host},
    upstream::{
        Answer, BodyError, Group, Lease, ResponseBody, SendError, Tried,
        request_head::{self, BodyLen},
    },
};

/// Which server answered and how long it took, for the access log and
/// metrics (set beside the response, [`forward`]'s `answered`).
#[derive(Clone, Copy, Debug)]
pub struct UpstreamInfo {
    pub addr: crate::upstream::Target,
    pub time: Duration,
}

/// What the proxy needs to know about the downstream side.
pub struct Downstream<'a> {
    pub client: SocketAddr,
    pub https: bool,
    pub request_id: HeaderValue,
    /// Closes a WebSocket tunnel whose client is banned while it is open
    /// (borrowed: no cost for requests that are not upgrades).
    pub kicks: &'a Arc<crate::kick::Kicks>,
    /// For header rules' variables: the listener's port, and the request
    /// target as received when it differs from the one forwarded.
    pub server_port: u16,
    pub request_uri: Option<&'a hyper::http::uri::PathAndQuery>,
    /// The client's request head as it came (rampart's HTTP/1 server),
    /// followed by where the connection's parse found its pieces
    /// (`h1::head_index`, its last `client_index_len` bytes): the
    /// upstream head is written from them ([`super::raw_head`]).
    pub client_head: Option<Bytes>,
    pub client_index_len: u8,
    /// The request's header map was not built (`super::request_map`):
    /// built from `client_head` if the upstream head needs it.
    pub map_pending: bool,
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// Forwards `req`, whatever the downstream side's body type: it is read
/// whole first (`body::read`). `answered` is set to the server whose
/// response it returns.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::manual_async_fn)] // the captures are not moved into locals
pub fn forward<B>(
    group: &Arc<Group>,
    route: &Route,
    http: &crate::config::HttpSettings,
    memory: body::Memory<'_>,
    down: &Downstream<'_>,
    going_away: &Arc<super::websocket::GoingAway>,
    answered: &mut Option<UpstreamInfo>,
    mut req: Request<B>,
) -> impl Future<Output = Result<Reply, ProxyError>>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    // Not an `async fn`: see `http::handle`.
    async move {
        let websocket = headers::is_websocket(req.headers()) && req.version() == Version::HTTP_11;
        // Without its map, an HTTP/1 request's length is its body's (the
        // parse took it from its one `Content-Length`).
        let declared = if down.map_pending {
            req.body().size_hint().exact()
        } else {
            req.headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        };
        let downstream_upgrade = websocket.then(|| super::upgrade::on(&mut req));
        let (parts, body) = req.into_parts();
        if let Some(len) = declared
            && len > route.max_body
        {
            // Refused before reading; the body is drained meanwhile so the client,
            // still uploading, gets to read the 413 (nginx's lingering close).
            tokio::spawn(body::drain(body));
            return Err(ProxyError::downstream(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body of {len} bytes over {}", route.max_body),
            ));
        }
        let limits = body::Limits {
            max: route.max_body,
            timeout: http.body_timeout,
        };
        // The body's memory is held until the exchange is over.
        let (body, _held) = body::read(body, limits, memory).await?;
        // The exchange's state is large (several KiB); boxed, a request still
        // reading its body (an HTTP/2 connection may have 128) holds none of it.
        let exchange = Exchange {
            group,
            route,
            response_buffer: http.response_buffer,
            down,
            going_away,
            websocket,
            downstream_upgrade,
            answered,
        };
        Box::pin(send(exchange, parts, body)).await
    }
}

/// A request whose body has been read, and what sending it needs.
struct Exchange<'a> {
    group: &'a Arc<Group>,
    route: &'a Route,
    response_buffer: u64,
    down: &'a Downstream<'a>,
    going_away: &'a Arc<super::websocket::GoingAway>,
    websocket: bool,
    downstream_upgrade: Option<super::upgrade::Pending>,
    answered: &'a mut Option<UpstreamInfo>,
}

/// Sends the request to a server of the group (retrying as allowed) and
/// makes its response the client's.
async fn send(
    exchange: Exchange<'_>,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Reply, ProxyError> {
    let Exchange {
        group,
        route,
        response_buffer,
        down,
        going_away,
        websocket,
        downstream_upgrade,
        answered,
    } = exchange;
    let upstream = &group.config;

    // Origin form (`/path?query`), as servers expect from a client; the
    // connection already goes to the chosen server. Written once: every
    // attempt sends the same bytes.
    let mut held = HeadBuf::take();
    let up_head = &mut held.0;
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let from_client = !websocket
        && route
            .headers
            .as_deref()
            .is_none_or(|r| r.request.is_empty())
        && down.client_head.as_deref().is_some_and(|kept| {
            let head_len = kept
                .len()
                .saturating_sub(usize::from(down.client_index_len));
            let (head, index) = kept.split_at(head_len);
            let edits = raw_head::Edits {
                client: down.client.ip(),
                https: down.https,
                request_id: down.request_id.as_bytes(),
                target,
                body_len: body.len(),
            };
            raw_head::write(head, index, &edits, up_head)
        });
    if !from_client {
        if down.map_pending
            && let Some(kept) = &down.client_head
        {
            let head_len = kept
                .len()
                .saturating_sub(usize::from(down.client_index_len));
            let head = kept.slice(..head_len);
            super::request_map::fill(&mut parts.headers, &head);
        }
        map_head(&mut parts, route, down, websocket, &body, up_head);
    }
    let can_retry_after_response = idempotent(&parts.method) && !websocket;

    group.earn_retry();
    let mut tried = Tried::default();
    let mut last = UpstreamFailure::NoneAvailable;
    for _ in 0..=upstream.retries {
        let now = tokio::time::Instant::now();
        let Some(lease) = group.pick(tried.as_slice(), now) else {
            break;
        };
        if !tried.is_empty() {
            group
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        tried.push(lease.id());
        let pool = &lease.backend.pool;
        // Every deadline of the exchange from the two clock reads it makes
        // (`now`, and the head's arrival): one per timer would be five.
        // The head's is kept by the connection's own timer (`pool.send`).
        let sent = pool
            .send(
                up_head,
                &body,
                &parts.method,
                (upstream.connect_timeout, upstream.send_timeout),
                Some(now + upstream.read_timeout),
            )
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.head.status;
                let took = now.elapsed();
                let head_at = now + took;
                lease.backend.responses.observe(&crate::metrics::Observed {
                    status: status.as_u16(),
                    total: took,
                    ..Default::default()
                });
                let retryable = matches!(status.as_u16(), 502..=504);
                if retryable
                    && can_retry_after_response
                    && tried.len() <= upstream.retries as usize
                    && group.spend_retry()
                {
                    group.failed(&lease.backend, now);
                    last = UpstreamFailure::Unreachable;
                    continue;
                }
                if retryable {
                    group.failed(&lease.backend, now);
                } else {
                    group.succeeded(&lease.backend);
                }
                if status == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(down_upgrade) = downstream_upgrade
                {
                    return Ok(super::websocket::tunnel(
                        resp.into_response(),
                        down_upgrade,
                        lease,
                        route.idle_timeout,
                        going_away.clone(),
                        (down.kicks.clone(), down.client.ip()),
                    )
                    .into());
                }
                let Answer {
                    head,
                    body: mut rbody,
                } = resp;
                // A tunnel's head (a 2xx to CONNECT, not an upgrade) kept
                // its hop-by-hop headers; other heads came without them
                // (`upstream::head`) and are forwarded as they came.
                let tunnel = rbody.is_tunnel();
                let reply = |body| {
                    let mut reply = Reply::Forwarded(Forwarded {
                        head,
                        body,
                        request_id: None,
                    });
                    if tunnel {
                        headers::strip_hop_by_hop(reply.map().headers_mut(), false);
                    }
                    reply
                };
                // Noted once the response is the client's (a body that
                // fails below makes a 502 of rampart's own).
                let info = UpstreamInfo {
                    addr: lease.backend.addr,
                    time: took,
                };
                // A response that fits the buffer is read whole right away, so
                // the upstream connection goes back to the pool at once even
                // when the client reads slowly; larger ones are streamed.
                let small = hyper::body::Body::size_hint(&rbody)
                    .exact()
                    .is_some_and(|n| n <= response_buffer);
                if small {
                    let read_by = head_at + upstream.read_timeout;
                    let read = tokio::time::timeout_at(read_by, whole(&mut rbody)).await;
                    let failure = match read {
                        Ok(Ok(bytes)) => Ok(bytes),
                        Err(_) => Err(UpstreamFailure::Timeout),
                        Ok(Err(BodyError::Framing(e))) => Err(UpstreamFailure::Invalid(e.why)),
                        Ok(Err(BodyError::Io(_))) => Err(UpstreamFailure::Unreachable),
                    };
                    let bytes = match failure {
                        Ok(bytes) => bytes,
                        // Nothing of it reached the client yet: an
                        // idempotent request whose server died, timed out
                        // or broke its framing mid-body (a close before
                        // the end is a framing fault) goes to another
                        // one, as after a 502.
                        Err(kind) => {
                            group.failed(&lease.backend, now);
                            if can_retry_after_response
                                && tried.len() <= upstream.retries as usize
                                && group.spend_retry()
                            {
                                last = kind;
                                continue;
                            }
                            return Err(ProxyError::Upstream {
                                upstream: upstream.name.clone(),
                                kind,
                            });
                        }
                    };
                    if let Some(conn) = rbody.reusable() {
                        pool.put_at(conn, head_at);
                    }
                    drop(lease);
                    *answered = Some(info);
                    return Ok(reply(ForwardedBody::Whole(bytes)));
                }
                if let Err(e) = rbody.check_buffered() {
                    group.failed(&lease.backend, now);
                    return Err(ProxyError::Upstream {
                        upstream: upstream.name.clone(),
                        kind: UpstreamFailure::Invalid(e.why),
                    });
                }
                let body = LeasedBody {
                    inner: rbody,
                    lease,
                    read_timeout: upstream.read_timeout,
                    idle: Box::pin(tokio::time::sleep_until(head_at + upstream.read_timeout)),
                };
                *answered = Some(info);
                return Ok(reply(ForwardedBody::Streamed(body.boxed())));
            }
            Err(e) => {
                group.failed(&lease.backend, now);
                last = match &e {
                    _ if e.timed_out() => UpstreamFailure::Timeout,
                    SendError::Response(h1) => UpstreamFailure::Invalid(h1.why),
                    _ => UpstreamFailure::Unreachable,
                };
                // Nothing reached the server if the connect failed: any request may go
                // elsewhere, and for free. Otherwise only an idempotent one, from the budget.
                if !(e.is_connect() || (can_retry_after_response && group.spend_retry())) {
                    break;
                }
                log::debug!(
                    "upstream {}: {} failed: {e}; trying another server",
                    upstream.name,
                    lease.backend.addr
                );
            }
        }
    }
    Err(ProxyError::Upstream {
        upstream: upstream.name.clone(),
        kind: last,
    })
}

/// The upstream head from the request's `HeaderMap`, edited: HTTP/2's
/// requests, and the HTTP/1 ones [`raw_head`] leaves.
fn map_head(
    parts: &mut hyper::http::request::Parts,
    route: &Route,
    down: &Downstream<'_>,
    websocket: bool,
    body: &Bytes,
    out: &mut Vec<u8>,
) {
    let host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let mut head = std::mem::take(&mut parts.headers);
    headers::strip_hop_by_hop(&mut head, websocket);
    headers::add_forwarded(&mut head, down.client.ip(), down.https, host.as_ref());
    if let Some(h) = &host {
        head.insert(header::HOST, h.clone());
    }
    head.insert(X_REQUEST_ID.clone(), down.request_id.clone());
    if let Some(rules) = route.headers.as_deref()
        && !rules.request.is_empty()
    {
        header_rules_on_request(rules, &mut head, down, host.as_ref(), &parts.uri);
    }
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let len = if body.is_empty() {
        BodyLen::Empty
    } else {
        BodyLen::Known(body.len() as u64)
    };
    request_head::write(&parts.method, target, &mut head, len, out);
}

/// The upstream's response body. It holds the server's lease until it ends
/// (least_conn counts requests until their last byte) and gives the
/// connection back to the pool once the body was read to its end.
///
/// A server that sends nothing for `read_timeout` while the body is being
/// read (the time between two successive reads, nginx
/// `proxy_read_timeout`) ends the body with an error: the client's
/// response is cut (HTTP/1: the connection closes; HTTP/2: the stream is
/// reset), as nginx does.
struct LeasedBody {
    inner: ResponseBody,
    lease: Lease,
    read_timeout: Duration,
    /// Fires `read_timeout` after the last frame (or the response head).
    idle: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for LeasedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.read_timeout;
                this.idle.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                    "upstream {}: nothing of the response body for {:?}",
                    this.lease.backend.addr, this.read_timeout
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LeasedBody {
    fn drop(&mut self) {
        // Only a fully read response leaves the connection reusable.
        if let Some(conn) = self.inner.reusable() {
            self.lease.backend.pool.put(conn);
        }
    }
}

/// A response body read to its end: one read's bytes as they are (most
/// small bodies), or several joined.
async fn whole(body: &mut ResponseBody) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        match (&mut first, &mut joined) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let mut j = BytesMut::with_capacity(f.len() + data.len());
                j.extend_from_slice(f);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
            (_, Some(j)) => j.extend_from_slice(&data),
        }
    }
    Ok(joined.map_or_else(|| first.unwrap_or_default(), BytesMut::freeze))
}

/// Applies `rules`' request rules to the head going to the upstream, with
/// the variables of this exchange.
fn header_rules_on_request(
    rules: &HeaderRules,
    head: &mut hyper::HeaderMap,
    down: &Downstream<'_>,
    host: Option<&HeaderValue>,
    uri: &hyper::Uri,
) {
    // `$http_*` in a request rule reads the client's headers as they came,
    // before any rule changed them (nginx's proxy_set_header does).
    let original = rules.request_needs_headers().then(|| head.clone());
    let vars = Vars {
        headers: original.as_ref(),
        host: host.and_then(|h| h.to_str().ok()).map_or("", bare_host),
        https: down.https,
        remote_addr: down.client.ip(),
        request_id: down.request_id.to_str().unwrap_or(""),
        server_port: down.server_port,
        request_uri: down
            .request_uri
            .or(uri.path_and_query())
            .map_or("/", |p| p.as_str()),
        uri: uri.path(),
        args: uri.query(),
    };
    rules.on_request(head, &vars);
}
