//! nginx's per-request variable families: `$http_NAME` (a request header,
//! NAME lowercased with `_` for `-`: `$http_x_forwarded_for`),
//! `$cookie_NAME` (a cookie of the `Cookie` header) and `$arg_NAME` (a
//! query argument, undecoded, as nginx gives it). Shared by the value
//! templates ([`crate::template`]) and the access log's `log_format`.

use std::borrow::Cow;

use hyper::{HeaderMap, header::HeaderName};

/// One of the families, with its name resolved at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestVar {
    Header(HeaderName),
    Cookie(String),
    Arg(String),
}

impl RequestVar {
    /// `http_x_real_ip`, `cookie_session`, `arg_page` (without the `$`);
    /// `None` for any other name.
    pub fn parse(name: &str) -> Option<RequestVar> {
        let valid =
            |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if let Some(h) = name.strip_prefix("http_").filter(|n| valid(n)) {
            let header = h.to_ascii_lowercase().replace('_', "-");
            return HeaderName::from_bytes(header.as_bytes())
                .ok()
                .map(RequestVar::Header);
        }
        if let Some(c) = name.strip_prefix("cookie_").filter(|n| valid(n)) {
            return Some(RequestVar::Cookie(c.to_string()));
        }
        name.strip_prefix("arg_")
            .filter(|n| valid(n))
            .map(|a| RequestVar::Arg(a.to_string()))
    }

    /// Whether the value comes from the request's headers (else its query).
    pub fn needs_headers(&self) -> bool {
        !matches!(self, RequestVar::Arg(_))
    }

    /// The value in a request with `headers` and `query`; `None` when the
    /// header, cookie or argument is absent (nginx's empty value).
    pub fn lookup<'a>(
        &self,
        headers: Option<&'a HeaderMap>,
        query: Option<&'a str>,
    ) -> Option<Cow<'a, str>> {
        match self {
            RequestVar::Header(name) => {
                let mut all = headers?
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok());
                let first = all.next()?;
                // nginx joins repeated headers with ", " (Cookie with "; ").
                let sep = if name == hyper::header::COOKIE {
                    "; "
                } else {
                    ", "
                };
                let mut rest = all.peekable();
                if rest.peek().is_none() {
                    return Some(Cow::Borrowed(first));
                }
                let mut joined = first.to_string();
                for v in rest {
                    joined.push_str(sep);
                    joined.push_str(v);
                }
                Some(Cow::Owned(joined))
            }
            RequestVar::Cookie(want) => headers?
                .get_all(hyper::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case(want).then_some(Cow::Borrowed(v))
                }),
            RequestVar::Arg(want) => query?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                k.eq_ignore_ascii_case(want).then_some(Cow::Borrowed(v))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_nginx() {
        assert_eq!(
            RequestVar::parse("http_x_forwarded_for"),
            Some(RequestVar::Header(HeaderName::from_static(
                "x-forwarded-for"
            )))
        );
        assert_eq!(
            RequestVar::parse("cookie_sid"),
            Some(RequestVar::Cookie("sid".into()))
        );
        assert_eq!(
            RequestVar::parse("arg_page"),
            Some(RequestVar::Arg("page".into()))
        );
        for no in [
            "http_",
            "cookie_",
            "arg_",
            "host",
            "upstream_addr",
            "http_a-b",
        ] {
            assert_eq!(RequestVar::parse(no), None, "{no}");
        }
    }

    #[test]
    fn values_come_from_the_request() {
        let mut h = HeaderMap::new();
        h.append("x-tag", "a".parse().unwrap());
        h.append("x-tag", "b".parse().unwrap());
        h.insert("user-agent", "curl/8".parse().unwrap());
        h.append("cookie", "theme=dark; sid=s1".parse().unwrap());
        h.append("cookie", "other=1".parse().unwrap());
        let get = |name: &str, q: Option<&'static str>| {
            RequestVar::parse(name)
                .unwrap()
                .lookup(Some(&h), q)
                .map(|c| c.into_owned())
        };
        assert_eq!(get("http_user_agent", None).as_deref(), Some("curl/8"));
        assert_eq!(get("http_x_tag", None).as_deref(), Some("a, b"));
        assert_eq!(get("http_x_none", None), None);
        assert_eq!(get("cookie_sid", None).as_deref(), Some("s1"));
        assert_eq!(get("cookie_other", None).as_deref(), Some("1"));
        assert_eq!(get("cookie_none", None), None);
        let q = Some("page=2&flag&x=%2F");
        assert_eq!(get("arg_page", q).as_deref(), Some("2"));
        assert_eq!(get("arg_flag", q).as_deref(), Some(""));
        assert_eq!(get("arg_x", q).as_deref(), Some("%2F"));
        assert_eq!(get("arg_none", q), None);
        assert_eq!(get("arg_page", None), None);
        assert_eq!(
            RequestVar::parse("http_x_tag").unwrap().lookup(None, None),
            None
        );
    }
}
