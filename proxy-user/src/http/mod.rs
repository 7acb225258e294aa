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
//!
//! What lives where: this file, what a connection tells the request path
//! ([`ConnInfo`], [`RefusedHead`]) and the response body type; `exchange`,
//! one request's way through ([`handle`]: what is done around routing,
//! from the request id to the access log line); `dispatch`, what answers
//! it (the checks before routing, routing, limits, rewrites, access rules,
//! and the route's action); the other files, one part of either each.

pub mod auth_request;
pub mod basic_auth;
mod body;
pub mod budget;
mod compress;
mod dispatch;
mod error;
pub mod error_page;
mod exchange;
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

use std::net::SocketAddr;

use bytes::Bytes;
pub use error::{ProxyError, UpstreamFailure};
pub use exchange::handle;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
pub use reply::{Forwarded, ForwardedBody, Reply};
pub use request_body::RequestBody;
pub use response::{CLOSE, Closed};

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
