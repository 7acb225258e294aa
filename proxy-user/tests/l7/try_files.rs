//! A static route's `try_files` (nginx's): a single-page app whose unknown
//! paths get its `index.html`, and files in front of an application
//! (`try_files $uri @app;`), run with a real client.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode, header};

use crate::support::{backend, client, get, json, proxy, send, test_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_fallback_and_files_in_front_of_an_upstream() {
    let dir = test_dir("try-files");
    let spa = dir.join("spa");
    std::fs::create_dir_all(spa.join("docs")).unwrap();
    std::fs::write(spa.join("index.html"), "<div id=app></div>").unwrap();
    std::fs::write(spa.join("app.js"), "start()").unwrap();
    std::fs::write(spa.join("docs/index.html"), "docs").unwrap();
    std::fs::write(spa.join(".env"), "SECRET=1").unwrap();
    let site = dir.join("site");
    std::fs::create_dir_all(site.join("dyn")).unwrap();
    std::fs::write(site.join("dyn/logo.svg"), "<svg/>").unwrap();
    let app = backend(1).await;
    let config = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\n\n[upstream.app]\nservers = [\"{}\"]\n\n\
         [[route]]\npath = \"/dyn/\"\nroot = {:?}\ntry_files = [\"$uri\", \"@app\"]\n\n\
         [[route]]\npath = \"/\"\nroot = {:?}\ntry_files = [\"$uri\", \"$uri/\", \"/index.html\"]\n",
        app.addr, site, spa
    );
    let p = proxy(&dir, &config).await;
    let c = client();
    let at = |path: &str| format!("http://{}{path}", p.addr());

    // The SPA: files as they are, every other path the app's shell.
    let (status, headers, body) = get(&c, &at("/app.js")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"start()"[..]));
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    for path in ["/users/42", "/settings/", "/.env"] {
        let (status, headers, body) = get(&c, &at(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(&body[..], b"<div id=app></div>", "{path}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // `$uri/`: a directory is a directory (the slash added, its index).
    let (status, headers, _) = get(&c, &at("/docs")).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers[header::LOCATION], "/docs/");
    assert_eq!(&get(&c, &at("/docs/")).await.2[..], b"docs");

    // Files in front of the application: a file is served, anything else
    // (any method, with its body) goes to [upstream.app].
    let (status, _, body) = get(&c, &at("/dyn/logo.svg")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"<svg/>"[..]));
    let (status, _, body) = get(&c, &at("/dyn/api/items?page=2")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = json(&body);
    assert_eq!(
        (seen["id"].as_u64(), seen["path"].as_str()),
        (Some(1), Some("/dyn/api/items"))
    );
    assert_eq!(seen["query"], "page=2");
    let post = Request::post(at("/dyn/api/items"))
        .body(Full::new(Bytes::from("name=x")))
        .unwrap();
    let (status, _, body) = send(&c, post).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            json(&body)["method"].as_str(),
            json(&body)["body_len"].as_u64()
        ),
        (Some("POST"), Some(6))
    );
    // A file is still a file: POST to it is 405, as for any static file.
    let post = Request::post(at("/dyn/logo.svg"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&c, post).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.hits.load(std::sync::atomic::Ordering::Relaxed), 2);
    println!(
        "figure: SPA paths -> index.html (200), files as is; try_files $uri @app: 2 of 4 requests proxied"
    );
}
