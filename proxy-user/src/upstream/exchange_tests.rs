//! The client against a scripted server on loopback: reuse, framing,
//! faults and whose they are.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{HeaderMap, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::h1::Blame;
use crate::upstream::{
    Pool, SendError, Target,
    request_head::{self, BodyLen},
};

/// One response, written in these pieces with a pause between them (so
/// each arrives in a read of its own).
type Answer = Vec<&'static [u8]>;

/// A server answering each request head with the next answer, on as many
/// connections as it is given; it closes a connection after each answer
/// with `close_each`. Returns its address and how many connections it took.
async fn server(answers: Vec<Answer>, close_each: bool) -> (Target, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    seen.clear();
                    let Some(answer) = answers.lock().unwrap().pop_front() else {
                        return;
                    };
                    for piece in answer {
                        if s.write_all(piece).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    if close_each {
                        return;
                    }
                }
            });
        }
    });
    (Target::Tcp(addr), accepted)
}

/// What a GET (or HEAD) got: status, headers, body, and whether its
/// connection went back to the pool.
async fn ask(pool: &Pool, method: Method) -> Result<(u16, HeaderMap, Vec<u8>, bool), String> {
    let mut head = Vec::new();
    request_head::write(
        &method,
        "/",
        &mut HeaderMap::new(),
        BodyLen::Empty,
        &mut head,
    );
    let second = Duration::from_secs(1);
    let resp = pool
        .send(&head, &Bytes::new(), &method, (second, second), None)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, mut body) = resp.into_response().into_parts();
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        data.extend_from_slice(frame.data_ref().unwrap());
    }
    let reused = match body.reusable() {
        Some(conn) => {
            pool.put(conn);
            true
        }
        None => false,
    };
    Ok((parts.status.as_u16(), parts.headers, data, reused))
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

#[tokio::test]
async fn a_connection_serves_request_after_request() {
    let (addr, accepted) = server(vec![vec![OK]; 3], false).await;
    let pool = Pool::new(addr, 4);
    for _ in 0..3 {
        let (status, _, body, reused) = ask(&pool, Method::GET).await.unwrap();
        assert_eq!((status, &body[..], reused), (200, &b"hello"[..], true));
        assert_eq!(pool.idle(), 1);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for three"
    );
}

#[tokio::test]
async fn a_chunked_body_in_odd_reads_is_its_data() {
    let odd: Answer = vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5",
        b"\r",
        b"\nhel",
        b"lo\r\n6;ext=1\r\n wor",
        b"ld\r",
        b"\n0\r\nTrailer: x\r\n",
        b"\r\n",
    ];
    let (addr, accepted) = server(vec![odd, vec![OK]], false).await;
    let pool = Pool::new(addr, 4);
    let (_, headers, body, reused) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&body), "hello world");
    // Hop-by-hop: left out of the head (`upstream::head::take`); the body is framed
    // again downstream.
    assert!(!headers.contains_key("transfer-encoding"));
    assert!(reused);
    let (_, _, body, _) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!(body, b"hello");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_length_beside_chunked_is_dropped_and_the_connection_closed() {
    let both: Answer =
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"];
    let (addr, accepted) = server(vec![both, vec![OK]], false).await;
    let pool = Pool::new(addr, 4);
    let (status, headers, body, reused) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"hello"[..]), "chunked decides");
    assert!(!headers.contains_key("content-length"));
    assert!(
        !reused,
        "never reused after a response that may be splitting"
    );
    ask(&pool, Method::GET).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_malformed_chunk_is_the_upstreams_fault_and_ends_the_connection() {
    // Seen with the head: known before the response is passed on.
    let (addr, accepted) = server(
        vec![
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            vec![OK],
        ],
        false,
    )
    .await;
    let pool = Pool::new(addr, 4);
    let mut head = Vec::new();
    request_head::write(
        &Method::GET,
        "/",
        &mut HeaderMap::new(),
        BodyLen::Empty,
        &mut head,
    );
    let s = Duration::from_secs(1);
    let resp = pool
        .send(&head, &Bytes::new(), &Method::GET, (s, s), None)
        .await
        .unwrap();
    let mut body = resp.body;
    let e = body.check_buffered().unwrap_err();
    assert_eq!((e.blame, e.status), (Blame::Upstream, 502));
    assert!(body.reusable().is_none());
    // Arriving later: the body ends with the error.
    let (addr2, _) = server(
        vec![vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"2\r\nok\r\n",
            b"2\r\nokX\r\n0\r\n\r\n",
        ]],
        false,
    )
    .await;
    let later = Pool::new(addr2, 4);
    let e = ask(&later, Method::GET).await.unwrap_err();
    assert!(e.contains("chunk data not ended by CRLF"), "{e}");
    assert_eq!(later.idle(), 0);
    // The first server's connection was not reused either.
    ask(&pool, Method::GET).await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn informational_heads_are_skipped_and_bodiless_responses_end_at_the_head() {
    let answers = vec![
        vec![
            &b"HTTP/1.1 100 Continue\r\n\r\n"[..],
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ],
        vec![b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"],
        vec![b"HTTP/1.1 304 Not Modified\r\n\r\n"],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"],
        vec![OK],
    ];
    let (addr, accepted) = server(answers, false).await;
    let pool = Pool::new(addr, 4);
    let (status, _, body, reused) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!((status, &body[..], reused), (200, &b"ok"[..], true));
    for (method, status) in [(Method::GET, 204), (Method::GET, 304), (Method::HEAD, 200)] {
        let got = ask(&pool, method).await.unwrap();
        assert_eq!((got.0, got.2.len(), got.3), (status, 0, true));
    }
    let (_, _, body, _) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!(body, b"hello", "no body was taken for the bodiless ones");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_to_the_close_and_connection_close_are_not_reused() {
    let answers = vec![
        vec![&b"HTTP/1.0 200 OK\r\n\r\nall "[..], b"of it"],
        vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"],
    ];
    let (addr, accepted) = server(answers, true).await;
    let pool = Pool::new(addr, 4);
    let (_, _, body, reused) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!((&body[..], reused), (&b"all of it"[..], false));
    let (_, _, body, reused) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!((&body[..], reused), (&b"ok"[..], false));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_unseen() {
    // The server closes after each answer without saying so.
    let (addr, accepted) = server(vec![vec![OK], vec![OK]], true).await;
    let pool = Pool::new(addr, 4);
    assert!(ask(&pool, Method::GET).await.unwrap().3, "looked reusable");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, _, body, _) = ask(&pool, Method::GET).await.unwrap();
    assert_eq!((status, &body[..]), (200, &b"hello"[..]));
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_broken_head_or_a_cut_body_is_an_error() {
    let answers = vec![
        vec![&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"[..]],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
    ];
    let (addr, _) = server(answers, true).await;
    let pool = Pool::new(addr, 4);
    let mut head = Vec::new();
    request_head::write(
        &Method::GET,
        "/",
        &mut HeaderMap::new(),
        BodyLen::Empty,
        &mut head,
    );
    let s = Duration::from_secs(1);
    match pool
        .send(&head, &Bytes::new(), &Method::GET, (s, s), None)
        .await
    {
        Err(SendError::Response(e)) => {
            assert_eq!((e.blame, e.status), (Blame::Upstream, 502));
        }
        other => panic!("{other:?}"),
    }
    let e = ask(&pool, Method::GET).await.unwrap_err();
    assert!(e.contains("body cut short"), "{e}");
    assert_eq!(pool.idle(), 0);
}
