//! Errors of the request path, each saying whose fault it was, and the one
//! place where they become a status.

use hyper::StatusCode;

/// Who is to blame for a failed request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client sent something we refuse (status given).
    #[error("downstream: {reason}")]
    Downstream { status: StatusCode, reason: String },
    /// No server of the group could be used, or it failed or timed out.
    #[error("upstream {upstream}: {kind}")]
    Upstream {
        upstream: String,
        kind: UpstreamFailure,
    },
    /// Something on our side (I/O on a static file, a bug).
    #[error("internal: {0}")]
    Internal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Every server is marked failed or was tried.
    NoneAvailable,
    /// Connecting or talking to the server failed.
    Unreachable,
    /// The server did not answer within the read timeout.
    Timeout,
    /// The server's answer broke HTTP/1 (its framing, its head): the
    /// server's fault, as `h1::H1Error` says why; 502.
    Invalid(&'static str),
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            UpstreamFailure::NoneAvailable => "no live server",
            UpstreamFailure::Unreachable => "server unreachable or broke the connection",
            UpstreamFailure::Timeout => "server timed out",
            UpstreamFailure::Invalid(why) => {
                return write!(f, "invalid response from the server: {why}");
            }
        })
    }
}

impl ProxyError {
    pub fn downstream(status: StatusCode, reason: impl Into<String>) -> ProxyError {
        ProxyError::Downstream {
            status,
            reason: reason.into(),
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Downstream { status, .. } => *status,
            ProxyError::Upstream {
                kind: UpstreamFailure::Timeout,
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
