//! Header handling between downstream and upstream: hop-by-hop headers
//! removed, `X-Forwarded-*`, `X-Real-IP` and `X-Request-Id` set (the
//! client's own forwarding headers are never passed on).

use std::net::IpAddr;

use hyper::{
    HeaderMap,
    header::{self, HeaderName, HeaderValue},
};

use crate::h1::hop_by_hop;

/// Hop-by-hop headers (RFC 9110 7.6.1), never forwarded: the one list
/// ([`hop_by_hop::NAMES`]) as names, not strings: removing by a string
/// parses it first, twice per request.
static HOP_BY_HOP: [HeaderName; 8] = {
    let n = hop_by_hop::NAMES;
    [
        HeaderName::from_static(n[0]),
        HeaderName::from_static(n[1]),
        HeaderName::from_static(n[2]),
        HeaderName::from_static(n[3]),
        HeaderName::from_static(n[4]),
        HeaderName::from_static(n[5]),
        HeaderName::from_static(n[6]),
        HeaderName::from_static(n[7]),
    ]
};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Removes hop-by-hop headers, including those the Connection header names.
/// With `keep_upgrade`, a WebSocket handshake's `Connection: upgrade` and
/// `Upgrade` survive.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Names the Connection header lists, but for the usual tokens:
    // `keep-alive` and `upgrade` are in the list below, and `close` names
    // no header anyone sends (it is removed by its string, which allocates
    // nothing). Most requests and responses list only those.
    let mut close = false;
    let mut named: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim) {
            if token.eq_ignore_ascii_case("close") {
                close = true;
            } else if !is_listed(token)
                && let Ok(name) = HeaderName::from_bytes(token.as_bytes())
            {
                named.push(name);
            }
        }
    }
    if close {
        headers.remove("close");
    }
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    // One look at each header, then removals of those present only: a
    // removal hashes its name, and most messages carry one of the eight.
    let kept =
        |name: &HeaderName| keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE);
    let mut present = 0u8;
    for key in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|n| n == key) {
            present |= 1 << i;
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 && !kept(name) {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// A header of the hop-by-hop list (so removed anyway).
fn is_listed(token: &str) -> bool {
    hop_by_hop::is(token)
}

/// The forwarding headers the proxy owns: what the upstream is told about
/// the client and the request as it arrived. None of the client's own is
/// trusted (no peer is a trusted proxy), so each is set by
/// [`add_forwarded`] or removed, however it was spelt.
static OWNED: [&HeaderName; 6] = [
    &X_FORWARDED_FOR,
    &X_FORWARDED_PROTO,
    &X_FORWARDED_HOST,
    &X_FORWARDED_PORT,
    &X_REAL_IP,
    &header::FORWARDED,
];

/// Tells the upstream about the client: `X-Forwarded-For` and `X-Real-IP`
/// are its address, `X-Forwarded-Proto` the scheme it used, and
/// `X-Forwarded-Host` the host it asked for (removed when it named none).
/// What the client sent in these, in `X-Forwarded-Port` and in `Forwarded`
/// (RFC 7239), is dropped, as are spellings with `_` for `-`
/// (`X_Forwarded_For`), which CGI-style servers read as the same header.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    https: bool,
    host: Option<&HeaderValue>,
) {
    // One look at each header; removals only for those present (most
    // requests carry none of them).
    let mut present: Vec<HeaderName> = Vec::new();
    for key in headers.keys() {
        // Every name owned starts with `x` or `f` (names are lower case):
        // one byte tells most headers apart from all six.
        if !matches!(key.as_str().as_bytes().first(), Some(b'x' | b'f')) {
            continue;
        }
        let owned = OWNED.contains(&key)
            || (key.as_str().contains('_') && {
                let dashed = key.as_str().replace('_', "-");
                OWNED.iter().any(|n| n.as_str() == dashed)
            });
        if owned {
            present.push(key.clone());
        }
    }
    for name in present {
        headers.remove(name);
    }
    let ip = ip_value(client);
    headers.insert(X_FORWARDED_FOR.clone(), ip.clone());
    headers.insert(X_REAL_IP.clone(), ip);
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if https { "https" } else { "http" }),
    );
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host.clone());
    }
}

/// An address as a header value; IPv4 without the formatting machinery,
/// which costs more than the rest of this module's work on a request.
fn ip_value(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string()).expect("an IP is a valid header value");
    };
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10];
        let skip = if octet >= 100 {
            0
        } else if octet >= 10 {
            1
        } else {
            2
        };
        for d in &digits[skip..] {
            text[len] = b'0' + d;
            len += 1;
        }
    }
    HeaderValue::from_bytes(&text[..len]).expect("an IP is a valid header value")
}

/// The request's id: the client's `X-Request-Id` if it sent a sane one, else a new one.
///
/// Marked sensitive, which HTTP/2 encodes as never indexed: a value unique
/// to each response would otherwise enter the connection's HPACK table,
/// evicting the fields worth indexing, and stay there (a small allocation
/// per stream, freed dozens of streams later) long after its stream's
/// state was freed around it, pinning that freed heap resident: 8 MiB of
/// the 50-connection HTTP/2 body attack's RSS (tests/reliability/http2.rs).
pub fn request_id(sent: Option<&HeaderValue>) -> HeaderValue {
    let mut id = match sent {
        Some(v)
            if v.len() <= 128
                && v.to_str().is_ok_and(|s| {
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                }) =>
        {
            v.clone()
        }
        // Owned by the value's bytes (one allocation): a copy into a
        // `Vec` would cost a second one at its first clone.
        _ => HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(new_id()))
            .expect("hex is a valid header value"),
    };
    id.set_sensitive(true);
    id
}

/// 128 random bits in hex. A per-thread xorshift generator seeded from the
/// kernel once: request ids must be unique, not secret, and a syscall per
/// request would cost more than the rest of the id handling.
fn new_id() -> [u8; 32] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    let next = || {
        STATE.with(|s| {
            let mut x = s.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.set(x);
            x
        })
    };
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (half, x) in id.chunks_mut(16).zip([next(), next()]) {
        for (i, digit) in half.iter_mut().enumerate() {
            *digit = HEX[(x >> (60 - 4 * i) & 0xf) as usize];
        }
    }
    id
}

fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into our buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let seed = if n == 8 {
        u64::from_ne_bytes(bytes)
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64
    };
    seed | 1
}

/// Whether the request asks for a WebSocket upgrade.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));

        // `close` and listed names, in any case; a WebSocket keeps its upgrade.
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("Close"));
        h.append(
            "connection",
            HeaderValue::from_static("TE, X-Other, Upgrade"),
        );
        for name in [
            "close",
            "te",
            "x-other",
            "upgrade",
            "proxy-connection",
            "x-kept",
        ] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        let mut ws = h.clone();
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.keys().collect::<Vec<_>>(), ["x-kept"]);
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws["connection"], "upgrade");
        assert_eq!(ws["upgrade"], "1");
        assert_eq!(ws.len(), 3, "{ws:?}");
    }

    /// The client's forwarding headers never reach the upstream: each is
    /// replaced or removed, in every spelling (issue 13).
    #[test]
    fn the_clients_forwarding_headers_are_replaced_or_removed() {
        let client_sent = |h: &mut HeaderMap| {
            for (name, value) in [
                ("x-forwarded-for", "203.0.113.1"),
                ("X-Forwarded-Proto", "https"),
                ("x-forwarded-host", "evil.example"),
                ("x-forwarded-port", "443"),
                ("x-real-ip", "203.0.113.1"),
                ("forwarded", "for=203.0.113.1;host=evil.example;proto=https"),
                ("x_forwarded_for", "203.0.113.2"),
                ("X_Forwarded_Host", "evil.example"),
                ("x-forwarded_proto", "https"),
                ("x_real_ip", "203.0.113.2"),
                ("x_request_id_not_owned", "kept"),
            ] {
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static(value),
                );
            }
        };
        let client = "198.51.100.2".parse().unwrap();
        let want = |h: &HeaderMap, proto: &str, host: Option<&str>| {
            let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
            names.sort();
            let mut expected = vec![
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-real-ip",
                "x_request_id_not_owned",
            ];
            if host.is_some() {
                expected.push("x-forwarded-host");
                expected.sort();
            }
            assert_eq!(names, expected);
            assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
            assert_eq!(h["x-forwarded-for"], "198.51.100.2");
            assert_eq!(h["x-real-ip"], "198.51.100.2");
            assert_eq!(h["x-forwarded-proto"], proto);
            assert_eq!(h.get("x-forwarded-host").map(|v| v.to_str().unwrap()), host);
        };
        // With a Host (or :authority).
        let mut h = HeaderMap::new();
        client_sent(&mut h);
        add_forwarded(
            &mut h,
            client,
            false,
            Some(&HeaderValue::from_static("example.com")),
        );
        want(&h, "http", Some("example.com"));
        // Without one.
        let mut h = HeaderMap::new();
        client_sent(&mut h);
        add_forwarded(&mut h, client, true, None);
        want(&h, "https", None);
    }

    #[test]
    fn addresses_are_written_as_std_writes_them() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "255.255.255.255",
        ]
        .into_iter()
        .chain(["::1", "2001:db8::7", "::ffff:1.2.3.4"])
        {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(ip), ip.to_string().as_str());
        }
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        let id = |h: &HeaderMap| request_id(h.get(&X_REQUEST_ID));
        assert_eq!(id(&h), "abc-123");
        h.insert("x-request-id", HeaderValue::from_static("bad id\t"));
        let made = id(&h);
        assert_eq!(made.len(), 32);
        assert!(
            made.to_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
        assert_ne!(made, id(&HeaderMap::new()));
        // Never indexed by HPACK, kept or made.
        assert!(made.is_sensitive());
        h.insert("x-request-id", HeaderValue::from_static("abc-123"));
        assert!(id(&h).is_sensitive());
    }

    #[test]
    fn websocket_upgrades_are_recognised() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_websocket(&h));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        assert!(!is_websocket(&h));
    }
}
