//! Request bodies, read whole before a request is forwarded (so a slow
//! uploader never holds an upstream connection): each read within
//! `body_timeout` of the one before (nginx `client_body_timeout`), the
//! whole within the route's `max_body`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{StatusCode, body::Incoming};

use super::ProxyError;

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

/// Reads the whole request body: 413 past `limits.max`, 408 when a read
/// waits longer than `limits.timeout` (the time between two successive
/// reads, not the whole transfer, as nginx counts it).
pub async fn read(mut body: Incoming, limits: Limits) -> Result<Bytes, ProxyError> {
    let mut buf = bytes::BytesMut::new();
    loop {
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
            if buf.len() as u64 + data.len() as u64 > limits.max {
                tokio::spawn(drain(body));
                return Err(ProxyError::downstream(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body over {} bytes", limits.max),
                ));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
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
