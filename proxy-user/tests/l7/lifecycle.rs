//! Stopping the daemon in process: it stops accepting at once, lets a
//! request in flight finish within the deadline it is given, and cuts
//! what outlasts it.

use std::time::Duration;

use crate::support::{backend, client, get, proxy, test_dir};

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
