//! What a connection costs the worker in futures: a spawned task's future
//! is moved into the task as it is spawned, and a large one is copied (a
//! `memcpy` per new connection). The HTTP state machine
//! ([`super::downstream::Downstream::serve`], rampart's HTTP/1 server
//! inline, hyper's HTTP/2 boxed again inside it) is boxed inside the task,
//! built in its box ([`super::in_place`]), so the task itself stays small,
//! and a parked TLS connection does not keep room for HTTP state.

use std::mem::size_of;

use tokio::net::TcpStream;

use super::{downstream::Downstream, plain, tls_conn};

fn size3<A, B, C, F>(_: fn(A, B, C) -> F) -> usize {
    size_of::<F>()
}

fn size5<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
    size_of::<F>()
}

#[test]
fn connection_tasks_stay_small() {
    let plain = size3(plain::serve);
    let tls = size5(tls_conn::serve);
    let http = size3(Downstream::<'static, TcpStream>::serve);
    println!("plain connection task {plain} B, TLS connection task {tls} B, HTTP (boxed) {http} B");
    // When this was written (debug build): plain 480 B, TLS 4,088 B (the
    // rustls handshake is inline), HTTP 6,672 B; with rampart's HTTP/1
    // server the only one (its state inline): 528 B, 4,136 B, 11,040 B.
    // The bounds catch a task
    // whose HTTP state machine stops being boxed.
    assert!(
        plain < http,
        "a plain task ({plain} B) holds the HTTP state ({http} B) inline"
    );
    assert!(
        tls < http,
        "a TLS task ({tls} B) holds the HTTP state ({http} B) inline"
    );
}

#[test]
fn the_http_state_machine_does_not_grow() {
    let http = size3(Downstream::<'static, TcpStream>::serve);
    let handle = size3(crate::http::handle);
    println!("HTTP state machine {http} B, of which http::handle {handle} B");
    // Debug build, when this was written: 11,568 B and 4,624 B. Built in
    // its box it is no longer copied per connection, but every connection
    // being served holds this much. Boxing `http::handle`'s rare phases
    // (basic auth, `auth_request`, static files) left both sizes as they
    // were: the proxied request's phase is the largest.
    assert!(http <= 12 * 1024, "the HTTP state machine grew to {http} B");
    assert!(
        handle <= 5 * 1024,
        "http::handle's future grew to {handle} B"
    );
}
