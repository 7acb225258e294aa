//! Request bodies, read whole before a request is forwarded (so a slow
//! uploader never holds an upstream connection): each read within
//! `body_timeout` of the one before (nginx `client_body_timeout`), the
//! whole within the route's `max_body`, and the memory it takes within
//! the process's and the connection's budgets ([`super::budget`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{StatusCode, body::Incoming};

use super::{
    ProxyError,
    budget::{Budget, ConnBudget, Held},
};

/// How much of a refused body is read and thrown away, and for how long, so
/// the client sees the error response instead of a reset connection.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// What a body may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The route's `max_body`: 413 above.
    pub max: u64,
    /// `body_timeout`: 408 when no byte of the body arrives for this long.
    pub timeout: Duration,
}

/// The budgets a body's memory comes from.
#[derive(Clone, Copy)]
pub struct Memory<'a> {
    pub process: &'a Budget,
    pub connection: Option<&'a ConnBudget>,
}

/// Room kept for the next read before it is read: an HTTP/2 DATA frame at
/// the default maximum frame size. A stream waiting for memory thus reads
/// nothing, and what its client sends stays in the flow-control window.
const AHEAD: u64 = 16 << 10;

/// Reads the whole request body: 413 past `limits.max`, 408 when a read
/// waits longer than `limits.timeout` (the time between two successive
/// reads, not the whole transfer, as nginx counts it), 503 when the
/// process's body memory is spent. The memory stays held until the
/// returned [`Held`] is dropped.
pub async fn read(
    mut body: Incoming,
    limits: Limits,
    memory: Memory<'_>,
) -> Result<(Bytes, Held), ProxyError> {
    // A Vec grown by hand (doubling, capped at the limit), so that the
    // memory counted is the memory allocated.
    let mut buf: Vec<u8> = Vec::new();
    let mut held = Held::default();
    // What the body can still grow to: its declared length, if any, within the limit.
    let most = hyper::body::Body::size_hint(&body)
        .upper()
        .unwrap_or(u64::MAX)
        .min(limits.max);
    if let Some(conn) = memory.connection
        && !hyper::body::Body::is_end_stream(&body)
    {
        // The connection's share is taken whole, up front (see budget.rs).
        held.reserve(most, conn).map_err(|_| {
            ProxyError::downstream(
                StatusCode::SERVICE_UNAVAILABLE,
                "the connection's request body memory (body_memory_per_connection) is in use",
            )
        })?;
    }
    if !hyper::body::Body::is_end_stream(&body) {
        // The first buffer: a declared length whole, at once; else at
        // least the allocator's mmap threshold. Either way a large body
        // never passes through heap-sized buffers on its way up: freed,
        // those would stay resident as heap (glibc keeps freed heap), and
        // many bodies growing at once would leave memory resident that
        // the budget no longer counts.
        let first = match hyper::body::Body::size_hint(&body).exact() {
            Some(_) => most,
            None => super::budget::MMAP_THRESHOLD.min(most),
        };
        grow(&mut buf, &mut held, first, limits, memory)?;
    }
    while !hyper::body::Body::is_end_stream(&body) {
        let want = (buf.len() as u64 + AHEAD).min(most);
        grow(&mut buf, &mut held, want, limits, memory)?;
        let frame = match tokio::time::timeout(limits.timeout, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                return Err(ProxyError::downstream(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request body timed out: nothing for {:?} after {} bytes",
                        limits.timeout,
                        buf.len()
                    ),
                ));
            }
        };
        let frame = frame.map_err(|e| {
            ProxyError::downstream(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            let need = buf.len() as u64 + data.len() as u64;
            if need > limits.max {
                tokio::spawn(drain(body));
                return Err(ProxyError::downstream(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over {} bytes", limits.max),
                ));
            }
            // A read larger than the room kept (HTTP/1 reads can be).
            grow(&mut buf, &mut held, need, limits, memory)?;
            buf.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(buf), held))
}

/// Makes `buf`'s capacity at least `want` (doubling, within the limit),
/// the memory taken from the process's budget first.
fn grow(
    buf: &mut Vec<u8>,
    held: &mut Held,
    want: u64,
    limits: Limits,
    memory: Memory<'_>,
) -> Result<(), ProxyError> {
    let cap = buf.capacity() as u64;
    if want <= cap {
        return Ok(());
    }
    let new_cap = (cap * 2).min(limits.max).max(want);
    match held.grow(new_cap - cap, memory.process) {
        Ok(()) => {
            buf.reserve_exact(new_cap as usize - buf.len());
            Ok(())
        }
        Err(_) => Err(ProxyError::downstream(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "request body memory (body_memory = {}) spent",
                memory.process.limit()
            ),
        )),
    }
}

/// Reads and discards what is left of a refused body, within bounds.
pub async fn drain(mut body: Incoming) {
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
