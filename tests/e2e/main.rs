//! End-to-end tests of the L7 tier with real peers: Uvicorn workers running
//! the FastAPI example, curl (HTTP/1.1, HTTP/2, TLS versions) and a Python
//! WebSocket client, in a network namespace of their own (so the example's
//! fixed ports 80, 443 and 8001-8004 collide with nothing).

mod fastapi;
