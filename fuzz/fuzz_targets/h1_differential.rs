//! The HTTP/1 codec (`proxy_user::h1`, rampart's only HTTP/1 server and
//! client) against the reference rampart was held to before it: the
//! framing scanner's verdicts and hyper's parse (hyper's HTTP/1 server and
//! the scanner are gone from the product; their rules are modelled in
//! [`rampart_fuzz::h1`] with httparse and the `http` crate).
//!
//! Input: the first byte chooses the case and limits, the rest is the
//! stream. Bit 7 clear: a request stream; set: a response stream, to a GET,
//! HEAD or CONNECT (bits 4-5). Bits 0-1 choose the head size limit (64,
//! 256, 1024, 8192), bits 2-3 the line and header-count limits.
//!
//! Oracles:
//! - a request head is accepted or refused as today, with the same status
//!   (400, 414, 431), and when accepted with the same framing (no body, a
//!   length, chunked), head length, keep-alive and upgrade;
//! - the answer does not depend on how the head is split: every prefix is
//!   incomplete or gets the same answer;
//! - the upstream head written for an accepted request parses again, with
//!   the same framing, one `X-Forwarded-For`, and no hop-by-hop header but
//!   `Transfer-Encoding: chunked` for a chunked body;
//! - a body is followed to the same end (or refused) fed whole and byte by
//!   byte, and as hyper's chunked grammar reads it whole (the model);
//! - a response head gets hyper's client decision (refused: 502; 1xx; a
//!   tunnel; or a final response with the same framing and head length).
//!
//! Deliberate differences, not compared:
//! - request targets not in origin form (absolute, authority, `*`) are read
//!   by the codec itself (`h1::target`); hyper's `Uri` takes more of them;
//! - a head httparse refuses is 400 even when one of its lines is over the
//!   line limit: today that is 414/431 or 400 depending on whether the whole
//!   head arrived in one read (the scanner only judges whole heads);
//! - `PRI` (HTTP/2 prior knowledge) is the connection's business before a
//!   head is parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy_user::h1::{
    Blame, Framing,
    body::{Body, BodyLimits},
    request::{self, Limits},
    response::{self, Kind},
    upstream_head::{self, Edit, Forwarding},
};
use rampart_fuzz::h1::{self as model, Answer, SLOTS};

fn framing(f: Framing) -> model::Framing {
    match f {
        Framing::Empty => model::Framing::Empty,
        Framing::Length(n) => model::Framing::Length(n),
        Framing::Chunked => model::Framing::Chunked,
        Framing::Close => model::Framing::Close,
    }
}

fn answer(buf: &[u8], limits: &Limits) -> Answer {
    let mut slots = request::slots::<SLOTS>();
    match request::parse(buf, limits, &mut slots) {
        Ok(Some(r)) => Answer::Accepted(model::Accepted {
            framing: framing(r.framing),
            head_len: r.head_len,
            keep_alive: r.keep_alive,
            upgrade: r.upgrade,
        }),
        Ok(None) => Answer::Incomplete,
        Err(e) => {
            assert_eq!(e.blame, Blame::Downstream);
            Answer::Refused(e.status)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let max_head = [64, 256, 1024, 8192][usize::from(sel & 3)];
    let (line, headers) =
        [(usize::MAX, usize::MAX), (40, 4), (80, 16), (usize::MAX, 2)][usize::from(sel >> 2 & 3)];
    if sel & 0x80 == 0 {
        request_stream(
            stream,
            Limits {
                max_head,
                line,
                headers,
            },
        );
    } else {
        let method = ["GET", "HEAD", "CONNECT", "POST"][usize::from(sel >> 4 & 3)];
        response_stream(stream, method, max_head);
    }
});

fn request_stream(stream: &[u8], limits: Limits) {
    let mine = answer(stream, &limits);
    let today = model::request(
        stream,
        &model::Limits {
            max_head: limits.max_head,
            line: limits.line,
            headers: limits.headers,
        },
    );
    if today != Answer::Skip {
        assert_eq!(mine, today, "codec vs today");
    }
    // Split independence.
    let step = (stream.len() / 256).max(1);
    for cut in (0..stream.len()).step_by(step) {
        match (answer(&stream[..cut], &limits), mine) {
            (Answer::Incomplete, _) => {}
            (prefix, whole) => assert_eq!(prefix, whole, "prefix of {cut} bytes"),
        }
    }
    let mut slots = request::slots::<SLOTS>();
    let Ok(Some(req)) = request::parse(stream, &limits, &mut slots) else {
        return;
    };
    rewritten(&req);
    body(req.framing, &stream[req.head_len..], Blame::Downstream);
}

/// The upstream head parses again, keeps the framing, and is clean.
fn rewritten(req: &request::Request<'_, '_>) {
    let rules = [
        Edit::Add("X-Added", b"1"),
        Edit::Default("X-Real-IP", b"no"),
    ];
    let fwd = Forwarding {
        client: "192.0.2.1".parse().unwrap(),
        https: true,
        request_id: b"id",
        websocket: false,
        rules: &rules,
    };
    let mut out = Vec::new();
    upstream_head::write(req, &fwd, &mut out);
    let mut slots = request::slots::<64>();
    let again = request::parse(&out, &Limits::head(usize::MAX), &mut slots)
        .unwrap_or_else(|e| {
            panic!(
                "upstream head refused: {e}: {:?}",
                String::from_utf8_lossy(&out)
            )
        })
        .expect("the upstream head is whole");
    assert_eq!(again.head_len, out.len());
    assert_eq!(again.framing, req.framing);
    assert_eq!(again.minor, 1);
    let count = |name: &str| {
        again
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(count("x-forwarded-for"), 1);
    assert_eq!(count("x-real-ip"), 1);
    for hop in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
    ] {
        assert_eq!(count(hop), 0, "{hop} forwarded");
    }
    assert_eq!(
        count("transfer-encoding"),
        usize::from(req.framing == Framing::Chunked)
    );
}

/// Whole, byte by byte, and the model agree on where the body ends.
fn body(framing: Framing, bytes: &[u8], blame: Blame) {
    let limits = BodyLimits {
        max_trailer: 64,
        max_trailers: 4,
    };
    let follow = |step: usize| {
        let mut b = Body::new(framing, blame, limits);
        let mut used = 0;
        for piece in bytes.chunks(step.max(1)) {
            let s = b.advance(piece).map_err(|e| assert_eq!(e.blame, blame))?;
            used += s.used;
            if s.done {
                return Ok(Some(used));
            }
        }
        Ok(if b.is_done() { Some(used) } else { None })
    };
    let whole = follow(bytes.len());
    assert_eq!(follow(1), whole, "byte by byte");
    let expected = match framing {
        Framing::Empty | Framing::Length(0) => Ok(Some(0)),
        Framing::Length(n) => Ok((n <= bytes.len() as u64).then_some(n as usize)),
        Framing::Chunked => model::chunked(bytes, 64, 4),
        Framing::Close => Ok(None),
    };
    assert_eq!(whole, expected, "body vs model");
}

fn response_stream(stream: &[u8], method: &str, max_head: usize) {
    let mut slots = request::slots::<SLOTS>();
    let mine = response::parse(stream, method, max_head, &mut slots);
    let today = model::response(stream, method, max_head);
    let got = match &mine {
        Ok(None) => model::Response::Incomplete,
        Err(e) => {
            assert_eq!((e.blame, e.status), (Blame::Upstream, 502));
            model::Response::Refused
        }
        Ok(Some(r)) => match r.kind {
            Kind::Informational => model::Response::Informational,
            Kind::Tunnel => model::Response::Tunnel,
            Kind::Final => model::Response::Final {
                framing: framing(r.framing),
                head_len: r.head_len,
            },
        },
    };
    assert_eq!(got, today, "codec vs hyper's client");
    if let Ok(Some(r)) = mine
        && r.kind == Kind::Final
    {
        body(r.framing, &stream[r.head_len..], Blame::Upstream);
    }
}
