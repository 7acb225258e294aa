//! Stopping the daemon in process: it stops accepting at once, lets a
//! request in flight finish within the deadline it is given, and cuts
//! what outlasts it.

use std::time::Duration;

use crate::support::{backend, client, get, proxy, status_on, test_dir};

fn config(backend: std::net::SocketAddr) -> String {
    format!(
        "[upstream.app]\nservers = [\"{backend}\"]\nread_timeout = \"10s\"\n\n\
         [[listener]]\nbind = \"127.0.0.1:0\"\n\n[[route]]\nupstream = \"app\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_within_the_deadline() {
    let b = backend(1).await;
    let p = proxy(&test_dir("shutdown"), &config(b.addr)).await;
    let to = p.addr();
    let slow = tokio::spawn(async move { get(&client(), &format!("http://{to}/slow")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = p.shutdown_within(Duration::from_secs(5)).await;
    let (status, _, body) = slow.await.unwrap();
    assert_eq!(status, 200, "{body:?}");
    println!("figure: shutdown with a 2 s request in flight took {took:?} (deadline 5 s)");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(
        std::net::TcpStream::connect_timeout(&to, Duration::from_millis(500)).is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_what_outlasts_the_deadline() {
    let b = backend(1).await;
    let p = proxy(&test_dir("cut"), &config(b.addr)).await;
    let to = p.addr();
    let slow = tokio::spawn(async move {
        client()
            .request(
                hyper::Request::get(format!("http://{to}/slow"))
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap(),
            )
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = p.shutdown_within(Duration::from_millis(400)).await;
    println!("figure: shutdown with a 400 ms deadline and a 2 s request took {took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(slow.await.unwrap().is_err(), "the request was cut");
}

/// An HTTP/1 connection waits for the worker's drain beside its next head
/// with one wait for its whole life (made at its first idle read, not per
/// request): after several requests, the drain still reaches the
/// connection in its task, which closes it at the drain (300 ms into the
/// shutdown), before it would have been parked (1 s idle) and closed from
/// the lot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_a_connection_idle_after_several_requests() {
    use tokio::io::AsyncReadExt;
    let b = backend(1).await;
    let p = proxy(&test_dir("idle-drain"), &config(b.addr)).await;
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    for i in 0..3 {
        assert_eq!(status_on(&mut s, "/x").await, Some(200), "request {i}");
    }
    let idle = std::time::Instant::now();
    let shutdown = tokio::spawn(p.shutdown_within(Duration::from_secs(5)));
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("closed within 3 s of the shutdown");
    let after = idle.elapsed();
    assert!(matches!(closed, Ok(0)), "{closed:?}");
    println!("figure: a connection idle after 3 requests closed {after:?} into the shutdown");
    assert!(
        after < Duration::from_millis(750),
        "closed {after:?} after its last response: by the park, not the drain"
    );
    shutdown.await.unwrap();
}
