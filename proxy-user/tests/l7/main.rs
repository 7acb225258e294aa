//! In-process tests of the daemon and its L7 tier: the real daemon
//! ([`proxy_user::daemon::Daemon::start`] with the userspace gate, so no
//! privilege is needed), its control verbs, reloads and escalation, with
//! backends in the same process, all on 127.0.0.1:0.

mod access;
mod access_log;
mod admin;
mod auth_request;
mod backup;
mod basic_auth;
mod bodies;
mod close;
mod compress;
mod control;
mod error_page;
mod escalation;
mod header_rules;
mod http1;
mod http2;
mod import_conditions;
mod import_maps;
mod import_redirect;
mod kick;
mod lifecycle;
mod paths;
mod proxying;
mod real_ip;
mod redirect_host;
mod reload;
mod request_vars;
mod rewrites;
mod route_pages;
mod routes;
mod support;
mod templates;
mod tls;
mod tls_handshake;
mod tls_sni;
mod try_files;
mod unix_upstream;
mod upstream_framing;
mod vhosts;
