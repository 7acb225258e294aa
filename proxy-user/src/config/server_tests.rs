//! `[[server]]`'s validation: defaults, `listen`, certificates, errors.

use std::path::Path;

use crate::config::Config;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
}

const LISTENERS: &str = "[[listener]]\nbind = \"127.0.0.1:0\"\nname = \"web\"\n\
                         [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"alt\"\n";

#[test]
fn top_level_routes_alone_are_one_default_server() {
    let cfg = parse(&format!("{LISTENERS}[[route]]\nrespond = 200\n")).unwrap();
    let s = &cfg.servers;
    assert_eq!(s.list.len(), 1);
    assert!(s.list[0].implicit && s.list[0].routes == (0..1));
    for l in 0..2 {
        assert_eq!(s.select(l, Some("anything.test")), Some(0));
        assert_eq!(s.select(l, None), Some(0));
    }
}

#[test]
fn default_server_is_marked_else_top_level_else_first_on_the_listener() {
    let servers = "[[server]]\nserver_name = [\"a.test\"]\n[[server.route]]\nrespond = 201\n\
                   [[server]]\nserver_name = [\"b.test\"]\nlisten = [\"alt\"]\n\
                   [[server.route]]\nrespond = 202\n[[server.route]]\nrespond = 203\n";
    let cfg = parse(&format!("{LISTENERS}{servers}")).unwrap();
    let s = &cfg.servers;
    assert_eq!(s.list.len(), 2, "no top-level routes: no implicit server");
    assert_eq!(s.list[0].routes, 0..1);
    assert_eq!(s.list[1].routes, 1..3);
    assert_eq!(s.list[1].listen, [1]);
    // `web` has only a.test; `alt` has both, a.test first.
    assert_eq!(s.select(0, Some("b.test")), Some(0));
    assert_eq!(s.select(1, Some("b.test")), Some(1));
    assert_eq!(s.select(1, Some("other.test")), Some(0));
    // `default_server = true` wins over the first.
    let marked = servers.replace(
        "listen = [\"alt\"]\n",
        "listen = [\"alt\"]\ndefault_server = true\n",
    );
    let cfg = parse(&format!("{LISTENERS}{marked}")).unwrap();
    assert_eq!(cfg.servers.select(1, Some("other.test")), Some(1));
    assert_eq!(cfg.servers.select(0, Some("other.test")), Some(0));
    // Top-level routes are the default server beside server blocks.
    let cfg = parse(&format!("{LISTENERS}[[route]]\nrespond = 404\n{servers}")).unwrap();
    let s = &cfg.servers;
    assert_eq!(s.list.len(), 3);
    assert!(s.list[0].implicit);
    assert_eq!(s.list[2].routes, 2..4);
    assert_eq!(s.select(1, Some("other.test")), Some(0));
    assert_eq!(s.select(1, Some("a.test")), Some(1));
    assert_eq!(s.select(1, Some("b.test")), Some(2));
}

#[test]
fn servers_no_request_reaches_are_named() {
    let cfg = parse(&format!(
        "{LISTENERS}[[route]]\nrespond = 404\n\
         [[server]]\nserver_name = [\"a.test\"]\ndefault_server = true\n[[server.route]]\nrespond = 200\n\
         [[server]]\n[[server.route]]\nrespond = 204\n"
    ))
    .unwrap();
    let warned = cfg.servers.unreachable();
    assert_eq!(warned.len(), 2, "{warned:?}");
    assert!(warned[0].starts_with("the top-level routes are never used"));
    assert!(
        warned[1].starts_with("[[server]] number 2 (without server_name) is never used"),
        "{warned:?}"
    );
    // Without default_server, the top-level routes are the default.
    let cfg = parse(&format!(
        "{LISTENERS}[[route]]\nrespond = 404\n[[server]]\nserver_name = [\"a.test\"]\n"
    ))
    .unwrap();
    assert!(cfg.servers.unreachable().is_empty());
}

#[test]
fn listen_names_a_listener_by_name_or_bind() {
    let text = "[[listener]]\nbind = \"127.0.0.1:8080\"\n[[listener]]\nbind = \"127.0.0.1:8081\"\n\
                [[server]]\nlisten = [\"127.0.0.1:8081\"]\n";
    assert_eq!(parse(text).unwrap().servers.list[0].listen, [1]);
}

#[test]
fn bad_servers_are_refused_with_their_place() {
    let cases = [
        (
            "[[server]]\nserver_name = [\"a.test\"]\n[[server]]\nserver_name = [\"x.test\", \"A.test\"]\n",
            "t.toml:10:26: server_name `A.test` is already on listener `web` (the server at line 7)",
        ),
        (
            "[[server]]\nlisten = [\"web\", \"nope\"]\n",
            "t.toml:8:18: listen: no [[listener]] named or bound at `nope` (listeners: `web`, `alt`)",
        ),
        (
            "[[server]]\nlisten = [\"127.0.0.1:0\"]\n",
            "t.toml:8:11: listen: 2 listeners are bound at `127.0.0.1:0`; give them a `name` and listen by name",
        ),
        (
            "[[server]]\nserver_name = [\"~^api(\\\\d+\"]\n",
            "t.toml:8:16: server_name `~^api(\\d+`: the regex does not compile",
        ),
        (
            "[[server]]\nserver_name = [\"a.*.test\"]\n",
            "t.toml:8:16: server_name `a.*.test`: expected a host name",
        ),
        (
            "[[server]]\ndefault_server = true\n[[server]]\nlisten = [\"alt\"]\ndefault_server = true\n",
            "t.toml:11:18: listener `alt` has two default servers: this one and the server at line 7",
        ),
        (
            "[[server]]\ntls = { cert = \"a.crt\", key = \"a.key\" }\n",
            "t.toml:8:7: tls: none of this server's listeners (`web`, `alt`) is a TLS listener",
        ),
        (
            "[[server]]\nbogus = 1\n",
            "t.toml:8:1: unknown field `bogus`",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(servers, want)| {
            let e = parse(&format!("{LISTENERS}{servers}")).unwrap_err();
            (!e.starts_with(want)).then(|| format!("{servers}\n got: {e}\nwant: {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    // The same name on two listeners is two servers' right.
    parse(&format!(
        "{LISTENERS}[[server]]\nserver_name = [\"a.test\"]\nlisten = [\"web\"]\n\
         [[server]]\nserver_name = [\"a.test\"]\nlisten = [\"alt\"]\n"
    ))
    .unwrap();
    // `tls = true` needs a server's certificate.
    let e = parse("[[listener]]\nbind = \"127.0.0.1:0\"\ntls = true\n").unwrap_err();
    assert!(
        e.starts_with("t.toml:1:1: listener `127.0.0.1:0`: tls = true, but no [[server]]"),
        "{e}"
    );
}

#[test]
fn server_certificates_go_on_its_tls_listeners_default_first() {
    let dir = std::env::temp_dir().join(format!("rampart-server-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["a", "b"] {
        let c = rcgen::generate_simple_self_signed(vec![format!("{name}.test")]).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), c.cert.pem()).unwrap();
        std::fs::write(
            dir.join(format!("{name}.key")),
            c.signing_key.serialize_pem(),
        )
        .unwrap();
    }
    // nginx's `listen 80; listen 443 ssl;` in each server; b is the default.
    let text = "[[listener]]\nbind = \"127.0.0.1:0\"\nname = \"plain\"\n\
                [[listener]]\nbind = \"127.0.0.1:0\"\nname = \"tls\"\ntls = true\n\
                [[server]]\nserver_name = [\"a.test\"]\ntls = { cert = \"a.crt\", key = \"a.key\" }\n\
                [[server]]\nserver_name = [\"b.test\"]\ndefault_server = true\n\
                tls = { cert = \"b.crt\", key = \"b.key\" }\n";
    let cfg = Config::parse(text, &dir.join("t.toml")).unwrap();
    assert!(cfg.listeners[0].tls.is_none());
    let certs: Vec<_> = cfg.listeners[1]
        .tls
        .as_ref()
        .unwrap()
        .certs
        .iter()
        .map(|c| c.cert.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        certs,
        ["b.crt", "a.crt"],
        "the default server's first: served without SNI"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn respond_444_takes_no_body() {
    let ok =
        format!("{LISTENERS}[[server]]\ndefault_server = true\n[[server.route]]\nrespond = 444\n");
    parse(&ok).unwrap();
    let e = parse(&format!("{ok}body = \"gone\"\n")).unwrap_err();
    assert!(e.contains("t.toml:11:8:") && e.contains("no body"), "{e}");
}
