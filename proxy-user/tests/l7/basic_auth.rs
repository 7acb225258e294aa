//! `auth_basic` with real clients: FastAPI's `/docs` behind a password
//! while the API stays open (the typical use), with a bcrypt user
//! (`htpasswd -B`) and a SHA-512-crypt one (`openssl passwd -6`).

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};

use crate::support::{backend, client, json, proxy, send, test_dir};

const SHA512_S3CRET: &str = "$6$saltsalt$As4wrv0kZlfch1du9WeH7qhskyLriQWySXrZzynnvi46nFnNxjdpl6ksRegrrKexvhIa/Iny8S8uF3fVWTMuC1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_need_a_password_and_the_api_stays_open() {
    let b = backend(1).await;
    let dir = test_dir("basic-auth");
    let bcrypt = bcrypt::hash("hunter2", 4).unwrap();
    std::fs::write(
        dir.join("htpasswd"),
        format!("alice:{bcrypt}\nbob:{SHA512_S3CRET}\n"),
    )
    .unwrap();
    let config = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\
         [upstream.app]\nservers = [\"{}\"]\n\
         [[route]]\npath = \"/docs\"\nupstream = \"app\"\n\
         auth_basic = \"API docs\"\nauth_basic_user_file = \"htpasswd\"\n\
         [[route]]\npath = \"/\"\nupstream = \"app\"\n",
        b.addr
    );
    let p = proxy(&dir, &config).await;
    let c = client();
    let url = format!("http://{}/docs", p.addr());
    let get = |auth: Option<(&str, &str)>, url: String| {
        let mut req = Request::get(url);
        if let Some((u, pw)) = auth {
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{pw}"));
            req = req.header("authorization", format!("Basic {b64}"));
        }
        send(&c, req.body(Full::new(Bytes::new())).unwrap())
    };
    let (s, h, _) = get(None, url.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h["www-authenticate"],
        "Basic realm=\"API docs\", charset=\"UTF-8\""
    );
    assert_eq!(
        get(Some(("alice", "hunter3")), url.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(Some(("mallory", "hunter2")), url.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.hits.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing forwarded"
    );
    let (s, _, body) = get(Some(("alice", "hunter2")), url.clone()).await;
    assert_eq!(s, StatusCode::OK);
    // The upstream sees the credentials, as behind nginx.
    assert!(json(&body)["headers"]["authorization"].is_string());
    assert_eq!(
        get(Some(("bob", "s3cret")), url.clone()).await.0,
        StatusCode::OK
    );
    let api = format!("http://{}/items", p.addr());
    assert_eq!(get(None, api).await.0, StatusCode::OK);
}
