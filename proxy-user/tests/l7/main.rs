//! In-process tests of the L7 tier: the real server, router, limiter and
//! proxy, with backends in the same process, all on 127.0.0.1:0.

mod access;
mod access_log;
mod admin;
mod auth_request;
mod basic_auth;
mod bodies;
mod http2;
mod kick;
mod paths;
mod proxying;
mod real_ip;
mod routes;
mod support;
mod tls;
