//! `return` as a route's `respond` (with its `body`) or `redirect`, nginx's
//! variables written as rampart's templates.

use super::{Translator, vars};
use crate::import::{
    emit::{self, Table},
    nginx::Directive,
};

impl Translator<'_> {
    /// `return`: a fixed response or a redirect. False when untranslatable.
    pub(super) fn respond(
        &mut self,
        t: &mut Table,
        ret: &Directive,
        names: &[String],
        chain: &[&[Directive]],
    ) -> bool {
        t.from(ret.at());
        let (code, rest) = match ret.args.as_slice() {
            [c] if c.parse::<u16>().is_ok() => (c.parse::<u16>().unwrap_or(0), None),
            [c, r] if c.parse::<u16>().is_ok() => (c.parse::<u16>().unwrap_or(0), Some(r.clone())),
            [url] => (302, Some(url.clone())),
            _ => {
                self.unsupported(ret, "expected `return CODE [TEXT|URL]` or `return URL`");
                return false;
            }
        };
        if !(100..=599).contains(&code) && code != 444 {
            self.unsupported(ret, format!("status {code}"));
            return false;
        }
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            let url = match vars::template(&rest.unwrap_or_default(), names, false) {
                Ok(url) => url,
                Err(var) => {
                    self.unsupported(ret, format!("in a redirect, {}", vars::refused(&var)));
                    return false;
                }
            };
            self.take(ret);
            let url = self.absolute(chain, ret, names, url);
            t.set("redirect", emit::s(&url));
            t.set("redirect_status", code.to_string());
            return true;
        }
        if code == 444 {
            // Closes without an answer, as nginx; any text is ignored there too.
            self.take(ret);
            t.set("respond", "444".into());
            return true;
        }
        let body = match vars::template(&rest.unwrap_or_default(), names, false) {
            Ok(body) => body,
            Err(var) => {
                self.unsupported(ret, format!("in a response body, {}", vars::refused(&var)));
                return false;
            }
        };
        self.take(ret);
        t.set("respond", code.to_string());
        if !body.is_empty() {
            t.set("body", emit::s(&body));
        }
        true
    }
}
