//! `auth_request` with a real auth service: its 2xx lets the request on
//! with its `X-User` copied onto it (a client's own `X-User` never
//! reaches the upstream), its 401 and 403 go to the client, and an auth
//! service that is down makes 500, as nginx does.

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::support::{backend, client, json, proxy, send, test_dir};

/// Answers by the `Authorization` it is sent: `Bearer good` 200 with
/// `X-User: alice` (and the original URI it was told, echoed), `Bearer
/// bad` 403, anything else 401 with a challenge.
async fn auth_service() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    let uri = req
                        .headers()
                        .get("x-original-uri")
                        .cloned()
                        .unwrap_or_else(|| "none".parse().unwrap());
                    let mut r = Response::new(Full::new(Bytes::from_static(b"auth says")));
                    match auth.as_str() {
                        "Bearer good" => {
                            r.headers_mut().insert("x-user", "alice".parse().unwrap());
                            r.headers_mut().insert("x-seen-uri", uri);
                        }
                        "Bearer bad" => *r.status_mut() = StatusCode::FORBIDDEN,
                        _ => {
                            *r.status_mut() = StatusCode::UNAUTHORIZED;
                            r.headers_mut().insert(
                                "www-authenticate",
                                "Bearer realm=\"api\"".parse().unwrap(),
                            );
                        }
                    }
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_service_decides_and_names_the_user() {
    let b = backend(1).await;
    let auth = auth_service().await;
    // A port nothing listens on, for the auth service being down.
    let down = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = test_dir("auth-request");
    let config = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\
         [upstream.app]\nservers = [\"{}\"]\n\
         [upstream.auth]\nservers = [\"{auth}\"]\n\
         [upstream.gone]\nservers = [\"{down}\"]\n\
         [[route]]\npath = \"/admin\"\nupstream = \"app\"\n\
         auth_request = {{ upstream = \"auth\", path = \"/verify\", copy_headers = [\"X-User\", \"X-Seen-URI\"] }}\n\
         [[route]]\npath = \"/broken\"\nupstream = \"app\"\n\
         auth_request = {{ upstream = \"gone\", path = \"/verify\" }}\n\
         [[route]]\npath = \"/\"\nupstream = \"app\"\n",
        b.addr
    );
    let p = proxy(&dir, &config).await;
    let c = client();
    let get = |path: &str, auth: Option<&str>| {
        let mut req =
            Request::get(format!("http://{}{path}", p.addr())).header("x-user", "mallory");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        send(&c, req.body(Full::new(Bytes::new())).unwrap())
    };
    let (s, _, body) = get("/admin/users?page=2", Some("Bearer good")).await;
    assert_eq!(s, StatusCode::OK);
    let h = &json(&body)["headers"];
    assert_eq!(h["x-user"], "alice", "{h}");
    assert_eq!(h["x-seen-uri"], "/admin/users?page=2", "{h}");
    let (s, hdrs, _) = get("/admin", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(hdrs["www-authenticate"], "Bearer realm=\"api\"");
    assert_eq!(
        get("/admin", Some("Bearer bad")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/broken", Some("Bearer good")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        b.hits.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "only the allowed one"
    );
    // Other routes never ask, and the client's X-User reaches them as sent.
    let (s, _, body) = get("/open", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&body)["headers"]["x-user"], "mallory");
}
