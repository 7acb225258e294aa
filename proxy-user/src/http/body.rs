//! Request bodies, read whole before a request is forwarded (so a slow
//! uploader never holds an upstream connection): each read within
//! `body_timeout` of the one before (nginx `client_body_timeout`), the
//! whole within the route's `max_body`, and the memory it takes within
//! the process's and the connection's budgets ([`super::budget`]).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::StatusCode;

use super::{
    ProxyError,
    budget::{Budget, ConnBudget, Held, REQUEST_STATE},
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
    mut body: super::RequestBody,
    limits: Limits,
    memory: Memory<'_>,
) -> Result<(Bytes, Held), ProxyError> {
    // A Vec grown by hand (doubling, capped at the limit), so that the
    // memory counted is the memory resident (see `grow`).
    let mut buf: Vec<u8> = Vec::new();
    let mut charged = 0u64;
    let mut held = Held::default();
    // What the body can still grow to: its declared length, if any, within the limit.
    let most = hyper::body::Body::size_hint(&body)
        .upper()
        .unwrap_or(u64::MAX)
        .min(limits.max);
    let reading = !hyper::body::Body::is_end_stream(&body);
    if reading {
        if let Some(conn) = memory.connection {
            // The connection's share is taken whole, up front (see budget.rs).
            held.reserve(most, conn).map_err(|_| {
                refused(
                    memory,
                    "the connection's request body memory (body_memory_per_connection) is in use",
                )
            })?;
        }
        held.grow(REQUEST_STATE, memory.process)
            .map_err(|_| spent(memory))?;
    }
    // What the connection may have received for this body and not handed
    // over yet, counted while it is read.
    let _in_flight = match memory.connection {
        Some(conn) if reading => Some(
            conn.in_flight(most, memory.process)
                .map_err(|_| spent(memory))?,
        ),
        _ => None,
    };
    while !hyper::body::Body::is_end_stream(&body) {
        let want = (buf.len() as u64 + AHEAD).min(most);
        grow(&mut buf, &mut charged, &mut held, want, most, memory)?;
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
            grow(&mut buf, &mut charged, &mut held, need, most, memory)?;
            buf.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(buf), held))
}

/// Makes room in `buf` for `want` bytes, the memory taken from the
/// process's budget first (`charged` is what this body has taken; `most`
/// is what it can grow to).
///
/// A body that may reach the allocator's mmap threshold is given a
/// buffer at least that large from the start, so it is mmapped and
/// unmapped when freed: it never passes through heap-sized buffers,
/// which glibc keeps resident once freed (many bodies growing at once
/// then left memory resident that no budget counted: +348 MiB for a
/// 256 MiB budget in the HTTP/2 body attack of tests/reliability). An
/// mmapped buffer's pages become resident only as they are written, so
/// such a body is charged for what it holds and the room ahead
/// (doubling), not for its capacity: a declared length is never taken
/// before its bytes have come. A smaller body is charged its capacity
/// (doubling from 16 KiB).
fn grow(
    buf: &mut Vec<u8>,
    charged: &mut u64,
    held: &mut Held,
    want: u64,
    most: u64,
    memory: Memory<'_>,
) -> Result<(), ProxyError> {
    if want <= *charged {
        return Ok(());
    }
    let charge = (*charged * 2).min(most).max(want);
    if held.grow(charge - *charged, memory.process).is_err() {
        return Err(spent(memory));
    }
    *charged = charge;
    let cap = buf.capacity() as u64;
    if charge > cap {
        let mapped = most >= super::budget::MMAP_THRESHOLD;
        let new_cap = if mapped {
            (cap * 2)
                .max(super::budget::MMAP_THRESHOLD)
                .max(charge)
                .min(most)
        } else {
            charge
        };
        buf.reserve_exact(new_cap as usize - buf.len());
    }
    Ok(())
}

/// The 503 for a body past the process's budget.
fn spent(memory: Memory<'_>) -> ProxyError {
    refused(
        memory,
        format!(
            "request body memory (body_memory = {}) spent",
            memory.process.limit()
        ),
    )
}

/// A body refused for want of memory: 503, and what it freed goes back soon.
fn refused(memory: Memory<'_>, why: impl Into<String>) -> ProxyError {
    memory.process.refused();
    ProxyError::downstream(StatusCode::SERVICE_UNAVAILABLE, why)
}

/// Reads and discards what is left of a refused body, within bounds.
pub async fn drain(mut body: super::RequestBody) {
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
