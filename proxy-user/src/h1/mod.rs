//! HTTP/1 framing for forwarding: the request and response heads parsed in
//! place in the connection's read buffer, the body framing decided once
//! (with the smuggling rules), the upstream request head written from the
//! original bytes with the proxy's edits into one buffer, and bodies
//! followed byte by byte without being re-encoded.
//!
//! ```text
//! read buffer ──request::parse──▶ Request { method, target, headers: &[Header], framing }
//!                                   │ (routing and limits read the slices)
//!                                   ▼
//!                   upstream_head::write_to ──▶ one buffer, one write upstream
//! request body bytes ──body::Body::advance──▶ forwarded as they are (Length or chunked)
//! upstream bytes ──response::parse──▶ Response { status, framing } ──body──▶ downstream
//! ```
//!
//! Issue 17: tested on its own (unit tests, the `h1_differential` fuzz
//! target against httparse + hyper's rules and those of the framing
//! scanner it replaced), and the only HTTP/1 server (`server::h1_conn`)
//! and client (`upstream`) (docs/http1.md).
//!
//! How it differs from hyper's path: no `HeaderMap` (no per-request
//! allocation, no header-name hashing), header names and order kept as the
//! client sent them, the framing rules checked once, in the parse, and bodies passed through in their
//! own framing instead of decoded and re-encoded.

pub mod body;
pub mod error;
pub mod framing;
pub mod head_bytes;
pub mod head_index;
pub mod hop_by_hop;
pub mod request;
pub mod response;
pub mod target;
pub mod upstream_head;

pub use error::{Blame, H1Error};
pub use framing::Framing;
