//! The request headers [`super::handle`] reads off every request, found in
//! one pass over the request's map: one hashed lookup each cost more, for
//! the few headers a request usually has, than comparing every name once
//! (a standard name is compared as a number).

use hyper::{
    HeaderMap,
    header::{self, HeaderValue},
};

use super::{RequestBody, headers::X_REQUEST_ID, request_map::Picked};

/// The first value of each header `handle` reads, owned (sharing the
/// request's bytes): from the places the HTTP/1 parse noted when the
/// request has no map yet ([`super::request_map`]), else from its map.
#[derive(Debug, Default)]
pub(super) struct Values {
    pub host: Option<HeaderValue>,
    pub content_length: Option<HeaderValue>,
    pub request_id: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub accept_encoding: Option<HeaderValue>,
}

impl Values {
    pub fn of(req: &hyper::Request<RequestBody>) -> Values {
        if let Some((head, p)) = req.body().picked() {
            return Values {
                host: Picked::value(head, p.host),
                content_length: Picked::value(head, p.content_length),
                request_id: Picked::value(head, p.request_id),
                referer: Picked::value(head, p.referer),
                user_agent: Picked::value(head, p.user_agent),
                accept_encoding: Picked::value(head, p.accept_encoding),
            };
        }
        let r = Read::of(req.headers());
        Values {
            host: r.host.cloned(),
            content_length: r.content_length.cloned(),
            request_id: r.request_id.cloned(),
            referer: r.referer.cloned(),
            user_agent: r.user_agent.cloned(),
            accept_encoding: r.accept_encoding.cloned(),
        }
    }
}

/// The first value of each header `handle` reads, if the request has it.
#[derive(Debug, Default)]
pub(super) struct Read<'a> {
    pub host: Option<&'a HeaderValue>,
    pub content_length: Option<&'a HeaderValue>,
    pub request_id: Option<&'a HeaderValue>,
    pub referer: Option<&'a HeaderValue>,
    pub user_agent: Option<&'a HeaderValue>,
    pub accept_encoding: Option<&'a HeaderValue>,
}

impl<'a> Read<'a> {
    pub fn of(headers: &'a HeaderMap) -> Read<'a> {
        let mut read = Read::default();
        for (name, value) in headers {
            let slot = if *name == header::HOST {
                &mut read.host
            } else if *name == header::CONTENT_LENGTH {
                &mut read.content_length
            } else if *name == header::USER_AGENT {
                &mut read.user_agent
            } else if *name == header::REFERER {
                &mut read.referer
            } else if *name == header::ACCEPT_ENCODING {
                &mut read.accept_encoding
            } else if *name == X_REQUEST_ID {
                &mut read.request_id
            } else {
                continue;
            };
            // The first value, as `HeaderMap::get` gives it.
            slot.get_or_insert(value);
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_header_is_its_first_value_as_get_gives_it() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("x-other", "o"),
            ("host", "a.example"),
            ("user-agent", "ua"),
            ("X-Request-Id", "id-1"),
            ("content-length", "3"),
            ("referer", "r"),
            ("accept-encoding", "gzip"),
            ("host", "second.example"),
        ] {
            h.append(
                hyper::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let r = Read::of(&h);
        for (got, name) in [
            (r.host, "host"),
            (r.content_length, "content-length"),
            (r.request_id, "x-request-id"),
            (r.referer, "referer"),
            (r.user_agent, "user-agent"),
            (r.accept_encoding, "accept-encoding"),
        ] {
            assert_eq!(got, h.get(name), "{name}");
        }
        let empty = HeaderMap::new();
        let none = Read::of(&empty);
        assert!(none.host.is_none() && none.request_id.is_none());
    }
}
