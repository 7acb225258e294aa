//! What goes wrong in an HTTP/1 message and whose fault it is: a
//! downstream error is answered with its 4xx and the connection closed; an
//! upstream one becomes the client's 502 (pingora's `ErrorSource`).

/// Whose bytes were wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The client's request (head or body).
    Downstream,
    /// The upstream server's response.
    Upstream,
}

/// A message refused, with the status it maps to and why (for the log;
/// never sent to the client beyond the status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{why} (status {status}, {blame:?})")]
pub struct H1Error {
    pub blame: Blame,
    /// 400, 414 or 431 for a request; 502 for a response.
    pub status: u16,
    pub why: &'static str,
}

impl H1Error {
    pub(crate) const fn downstream(status: u16, why: &'static str) -> H1Error {
        H1Error {
            blame: Blame::Downstream,
            status,
            why,
        }
    }

    pub(crate) const fn bad_request(why: &'static str) -> H1Error {
        H1Error::downstream(400, why)
    }

    pub(crate) const fn upstream(why: &'static str) -> H1Error {
        H1Error {
            blame: Blame::Upstream,
            status: 502,
            why,
        }
    }

    /// The same fault, blamed on `blame` (a body decoder serves both sides).
    pub(crate) const fn on(blame: Blame, why: &'static str) -> H1Error {
        match blame {
            Blame::Downstream => H1Error::bad_request(why),
            Blame::Upstream => H1Error::upstream(why),
        }
    }
}

/// httparse's refusal, as a reason.
pub(crate) fn syntax(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token in the start line",
        httparse::Error::TooManyHeaders => "too many header lines",
        httparse::Error::Version => "invalid HTTP version",
    }
}
