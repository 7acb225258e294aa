//! rampart's own HTTP/1 server connection, on the `h1` codec (hyper's
//! `server::conn::http1` was removed; hyper serves HTTP/2 only).
//!
//! Per request: the head is parsed once, in place, by
//! [`request::parse`] (the head limits and the framing rules: its refusal
//! is the status, and the connection closes); the request goes to
//! [`http::handle`] with a body fed from the connection as the handler
//! reads it ([`http::request_body`], following the body's framing with
//! [`h1::body::Body`]); the response is written by [`h1_response`]. Then
//! the next request, pipelined or not, in order. Between requests the
//! connection reads through the guard ([`super::guard`]), which times it
//! by [`super::lifecycle`] and parks it (an end-of-file here, after which
//! the shutdown hands the socket back); a drain closes it once idle; a
//! 101 hands the raw connection to the tunnel ([`http::upgrade`]).

use std::{future::Future, mem::MaybeUninit, pin::Pin, sync::Arc};

use bytes::Bytes;

use hyper::{
    Method, Request, StatusCode, Uri, Version,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::watch,
};

use super::{
    buffer::Buffer,
    busy::Busy,
    guard::Guarded,
    h1_feed::Feeding,
    h1_response::{self, Asked},
    quiet,
};
use crate::{
    h1::{
        Framing, H1Error,
        body::BodyLimits,
        head_bytes, head_index,
        request::{self, Limits},
    },
    http::{
        self, ConnInfo, RefusedHead, State,
        request_body::Fed,
        request_map::Picked,
        upgrade::{Offer, Upgraded},
    },
};

/// Header slots kept on the stack; more (a larger `max_headers`) are allocated.
const STACK_SLOTS: usize = 128;

/// The most header slots given to a parse, past the largest `max_headers`
/// (1000): a head with more is refused (431) whatever the limit says.
const MOST_SLOTS: usize = 1024;

/// What the connection is served with.
pub(super) struct H1<'a> {
    pub info: &'a ConnInfo,
    pub snapshot: &'a Arc<State>,
    pub limits: Limits,
    pub draining: &'a mut watch::Receiver<bool>,
    /// A plain TCP connection (else TLS): closed without `shutdown` first.
    pub plain: bool,
}

/// A head, parsed and made a request.
struct Head {
    req: Request<()>,
    /// The head's bytes, copied once, and where this parse found its
    /// pieces (`h1::head_index`, after the head's `head_len` bytes): the
    /// request's target and header values are slices of it, and the
    /// upstream head is written from it (`h1::upstream_head`).
    raw: Bytes,
    /// Where the values `http::handle` reads are in `raw`; the request
    /// has no header map (`http::request_map`) unless `map_pending` is false.
    picked: Picked,
    map_pending: bool,
    framing: Framing,
    keep_alive: bool,
    upgrade: bool,
    expect_continue: bool,
    head_len: usize,
    minor: u8,
}

/// Serves HTTP/1 on `io`, whose first bytes (`head`) were read already,
/// until the connection closes, parks or upgrades. `io` is
/// [`Guarded::driven`]: this driver tells it where heads and bodies are.
pub(super) async fn serve<S>(mut io: Guarded<S>, h1: H1<'_>, head: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let H1 {
        info,
        snapshot,
        limits,
        draining,
        plain,
    } = h1;
    let watch = io.watch().clone();
    // The worker's drain, which an idle connection waits for beside its
    // next head (`read`): one wait for the connection's life, made at
    // its first idle read, not one made, registered with the watch and
    // dropped per request (about 0.9k instructions per keep-alive GET).
    // Never polled again once ready: an idle read that sees it ends the
    // connection.
    let draining: &watch::Receiver<bool> = draining;
    let mut drained = std::pin::pin!(quiet::Quiet::new(async move {
        let _ = draining.clone().wait_for(|d| *d).await;
    }));
    let body_limits = BodyLimits {
        max_trailer: limits.max_head,
        max_trailers: limits.headers,
    };
    // The buffers come from the worker's spares and go back at the end
    // (see `buffer`); the first head read is the read buffer until
    // it is taken as the request's.
    let mut buf = Buffer::holding(head);
    let mut out = Buffer::spare();
    // A head is partly read: the guard times it from its first byte.
    let mut head_begun = false;
    loop {
        let head = match parse(&buf, &limits) {
            Ok(Some(head)) => head,
            Ok(None) => {
                let idle = buf.is_empty();
                if !idle && !head_begun {
                    head_begun = true;
                    io.head_started(Some(tokio::time::Instant::now()));
                }
                if read(&mut io, &mut buf, idle, drained.as_mut()).await {
                    continue;
                }
                if idle {
                    // The client closed, or the guard parks the
                    // connection: its shutdown hands the socket back.
                    let _ = io.shutdown().await;
                }
                return;
            }
            Err(e) => {
                // Boxed: a rare path, kept out of the connection's state.
                Box::pin(refuse(&mut io, e, &buf, info, snapshot, &mut out)).await;
                return;
            }
        };
        buf.drain(..head.head_len);
        if head_begun {
            head_begun = false;
            io.head_started(None);
        }
        let Head {
            mut req,
            raw,
            picked,
            map_pending,
            framing,
            keep_alive,
            upgrade,
            expect_continue,
            minor,
            head_len,
        } = head;
        let is_head = req.method() == Method::HEAD;
        let (mut body, mut feeding) = match framing {
            Framing::Length(0) | Framing::Empty | Framing::Close => (Fed::empty(), None),
            Framing::Length(n) => {
                let (body, feeder) = Fed::pair(Some(n));
                (body, Some(Feeding::new(feeder, framing, body_limits)))
            }
            Framing::Chunked => {
                let (body, feeder) = Fed::pair(None);
                (body, Some(Feeding::new(feeder, framing, body_limits)))
            }
        };
        if let Some(f) = &mut feeding {
            f.expect = expect_continue;
        }
        body.keep_head(raw, head_len, picked, map_pending);
        let upgrade_to = upgrade.then(|| {
            let (offer, tx) = Offer::new();
            req.extensions_mut().insert(offer);
            tx
        });
        let req = req.map(|()| body);
        let busy = Busy::enter(&watch);
        // Pinned here and lent to the body's feeder: one place for the
        // handler's state in this one (the feeder's future holding it by
        // value would be a second).
        // Built where it is pinned (`pin!` of the call), not built and
        // then moved there.
        let handling = std::pin::pin!(http::handle(snapshot.clone(), *info, req));
        let resp = match &mut feeding {
            None => handling.await,
            Some(f) => {
                let resp = f.during(handling, &mut io, &mut buf).await;
                io.body_left(None);
                resp
            }
        };
        if resp.is_closed() {
            // `respond = 444`: closed without a byte.
            return;
        }
        // What of the body nobody read is already here is taken (hyper
        // does the same); a body still to come closes the connection.
        let body_done = feeding.as_mut().is_none_or(|f| f.settle(&mut buf));
        let draining_now = *draining.borrow();
        let asked = Asked {
            head: is_head,
            minor,
            close: !keep_alive || draining_now || !body_done,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(tx) = upgrade_to
        {
            if h1_response::write(&mut io, resp, asked, &mut out)
                .await
                .is_ok()
            {
                busy.upgraded();
                drop(busy);
                let prefix = std::mem::take(&mut *buf);
                let _ = tx.send(Upgraded::new(prefix, Box::new(io)));
            }
            return;
        }
        let kept = h1_response::write(&mut io, resp, asked, &mut out).await;
        drop(busy);
        match kept {
            Ok(true) => {}
            Ok(false) => {
                if let Some(f) = &mut feeding
                    && !body_done
                {
                    f.linger(&mut io, &mut buf).await;
                }
                // TLS says it is done (close_notify). A plain socket is
                // just closed: with nothing unread (a body left unread
                // was lingered over above) the close sends the same FIN a
                // `shutdown` would, one system call fewer per connection;
                // with bytes unread, both end in a reset.
                if !plain {
                    let _ = io.shutdown().await;
                }
                return;
            }
            Err(e) => {
                log::debug!("{}: connection ended: {e}", info.client);
                return;
            }
        }
    }
}

/// Reads more of the connection into `buf`; `false` at its end (closed,
/// failed, parked, or `drained` while `idle`).
async fn read<S, D>(
    io: &mut Guarded<S>,
    buf: &mut Vec<u8>,
    idle: bool,
    drained: Pin<&mut D>,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Future,
{
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096.max(buf.len()));
    }
    if !idle {
        return matches!(io.read_buf(buf).await, Ok(n) if n > 0);
    }
    // Biased: the connection first; the drain is looked at only once it
    // was signalled (see `quiet`).
    tokio::select! {
        biased;
        r = io.read_buf(buf) => matches!(r, Ok(n) if n > 0),
        _ = drained => false,
    }
}

/// Parses the head at the start of `buf` into a request.
fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Head>, H1Error> {
    if buf.is_empty() {
        return Ok(None);
    }
    let n = limits.headers.saturating_add(1).min(MOST_SLOTS);
    if n <= STACK_SLOTS {
        let mut slots = request::slots::<STACK_SLOTS>();
        parse_into(buf, limits, &mut slots[..n])
    } else {
        let mut slots: Vec<MaybeUninit<httparse::Header<'_>>> =
            std::iter::repeat_with(MaybeUninit::uninit)
                .take(n)
                .collect();
        parse_into(buf, limits, &mut slots)
    }
}

fn parse_into<'b>(
    buf: &'b [u8],
    limits: &Limits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head>, H1Error> {
    let Some(r) = request::parse(buf, limits, slots)? else {
        return Ok(None);
    };
    let raw = head_index::keep(buf, &r);
    let mut picked = Picked::default();
    let mut fits = true;
    for h in r.headers {
        fits &= picked.see(buf, h.name, h.value);
    }
    // A head whose values' places do not fit a `Span` (over 64 KiB) gets
    // its map now.
    let map_now = if fits { &[][..] } else { r.headers };
    let req = build(&raw, buf, r.method, r.raw_target, r.minor, map_now)
        .ok_or(H1Error::downstream(400, "request not representable"))?;
    Ok(Some(Head {
        req,
        raw,
        picked,
        map_pending: fits && !r.headers.is_empty(),
        framing: r.framing,
        keep_alive: r.keep_alive,
        upgrade: r.upgrade,
        expect_continue: r.expect_continue,
        head_len: r.head_len,
        minor: r.minor,
    }))
}

/// The request `http::handle` takes, from the head's pieces (slices of
/// `parsed`). The target and the header values are slices of `raw`, the
/// copy of `parsed`'s head: no allocation of their own. A request served
/// is built with no `headers` (its map is built when read,
/// `http::request_map`); a refused one with all of them.
fn build(
    raw: &Bytes,
    parsed: &[u8],
    method: &str,
    target: &str,
    minor: u8,
    headers: &[httparse::Header<'_>],
) -> Option<Request<()>> {
    let shared = |piece: &[u8]| head_bytes::slice_of(raw, parsed, piece);
    let mut map = HeaderMap::with_capacity(headers.len());
    for h in headers {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(shared(h.value)).ok()?;
        map.append(name, value);
    }
    let mut req = Request::new(());
    *req.method_mut() = Method::from_bytes(method.as_bytes()).ok()?;
    *req.uri_mut() = Uri::from_maybe_shared(shared(target.as_bytes())).ok()?;
    *req.version_mut() = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *req.headers_mut() = map;
    Some(req)
}

/// Answers a refused head and closes. A head that is whole and only over
/// a limit or ambiguously framed goes through `http::handle`, marked
/// [`RefusedHead`] (so it is logged and counted as any request); one that cannot be read at all gets the bare status.
async fn refuse<S>(
    io: &mut Guarded<S>,
    e: H1Error,
    buf: &[u8],
    info: &ConnInfo,
    snapshot: &Arc<State>,
    out: &mut Vec<u8>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    log::debug!("{}: request head refused: {e}", info.client);
    let mut slots = vec![httparse::EMPTY_HEADER; 1024];
    let mut lenient = httparse::Request::new(&mut slots);
    let whole = match lenient.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let (Some(m), Some(p), Some(v)) = (lenient.method, lenient.path, lenient.version)
            else {
                return;
            };
            build(&Bytes::copy_from_slice(buf), buf, m, p, v, lenient.headers)
        }
        _ => None,
    };
    match whole {
        Some(mut req) => {
            req.extensions_mut().insert(RefusedHead {
                status: e.status,
                why: e.why,
            });
            let resp = http::handle(snapshot.clone(), *info, req.map(|()| Fed::empty())).await;
            let asked = Asked {
                head: false,
                minor: 1,
                close: true,
            };
            let _ = h1_response::write(io, resp, asked, out).await;
        }
        None => {
            h1_response::refusal(e.status, out);
            let _ = io.write_all(out).await;
        }
    }
    let _ = io.shutdown().await;
}

#[cfg(test)]
#[path = "h1_conn_tests.rs"]
mod tests;
