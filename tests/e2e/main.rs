//! End-to-end tests of the L7 tier with real peers, each in a network
//! namespace of its own (so fixed ports collide with nothing): Uvicorn
//! workers running the FastAPI example, curl (HTTP/1.1, HTTP/2, TLS
//! versions) and a Python WebSocket client; and the `rampart upstream`
//! controls against the real daemon.

mod dns_upstream;
mod fastapi;
mod fastapi_nginx;
mod instances;
mod maintenance;
mod proxy_protocol;
mod reload;
mod status_page;
mod tls_scan;
mod unix_upstream;
mod upgrade;
mod upstream;
mod values;
