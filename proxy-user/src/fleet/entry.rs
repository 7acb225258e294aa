//! One shared entry as it travels through Redis: a change (`add` or `del`)
//! of a block/allow entry or ban, with the host it comes from and why.
//! Everything read back is untrusted: [`decode`] bounds the size, refuses
//! unknown fields, names it can't use and expiries out of range, and never
//! panics. Encoding is JSON (one stream field, one hash value).

use serde::{Deserialize, Serialize};

use crate::{
    cidr::Cidr,
    config::fleet::is_name,
    control_socket::protocol::MAX_TTL_SECS,
    state_file::{Entry, ListName},
};

/// Largest encoded entry accepted (bytes); a reason is at most
/// [`MAX_REASON`], so a real one is well under this.
pub const MAX_ENTRY: usize = 2048;
/// Longest reason (characters) carried; a longer one is cut on publishing.
pub const MAX_REASON: usize = 512;
/// Origins a shared entry may have.
const ORIGINS: [&str; 2] = ["cli", "auto-ban"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Del,
}

/// A change of one shared entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub op: Op,
    pub list: ListName,
    pub cidr: Cidr,
    /// The host where it was added or removed.
    pub host: String,
    /// "cli" or "auto-ban" (adds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Why: the operator's reason, or escalation's evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wall-clock expiry, Unix seconds (adds only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

/// Why an entry read from Redis was skipped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} bytes: over the {MAX_ENTRY}-byte limit (or cut by the reading script)")]
    Oversize(usize),
    #[error("not an entry: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The `reason` label of `rampart_fleet_skipped_total`.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeError::Oversize(_) => "oversize",
            DecodeError::Malformed(_) => "malformed",
        }
    }
}

impl Change {
    /// The change that shares `entry`, added on `host`.
    pub fn add(entry: &Entry, host: &str) -> Change {
        Change {
            op: Op::Add,
            list: entry.list,
            cidr: entry.cidr,
            host: entry.host.clone().unwrap_or_else(|| host.to_string()),
            origin: Some(entry.origin.clone()),
            reason: entry.reason.as_ref().map(|r| cut(r, MAX_REASON)),
            expires_at: entry.expires_at,
        }
    }

    pub fn del(list: ListName, cidr: Cidr, host: &str) -> Change {
        Change {
            op: Op::Del,
            list,
            cidr,
            host: host.to_string(),
            origin: None,
            reason: None,
            expires_at: None,
        }
    }

    /// The snapshot's field for this entry: one per list and network.
    pub fn key(&self) -> String {
        key(self.list, self.cidr)
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The runtime entry it makes on a host that is not its origin.
    pub fn entry(&self) -> Entry {
        Entry {
            list: self.list,
            cidr: self.cidr,
            origin: self.origin.clone().unwrap_or_else(|| "cli".into()),
            reason: self.reason.clone(),
            expires_at: self.expires_at,
            host: Some(self.host.clone()),
            local: false,
        }
    }
}

/// The snapshot field of `list`'s `cidr`.
pub fn key(list: ListName, cidr: Cidr) -> String {
    let list = match list {
        ListName::Allow => "allow",
        ListName::Block => "block",
    };
    format!("{list}|{cidr}")
}

/// A change read from Redis, checked; `now` is Unix seconds (an expiry may
/// be at most [`MAX_TTL_SECS`] past it, plus a day of clock skew).
pub fn decode(bytes: &[u8], now: u64) -> Result<Change, DecodeError> {
    if bytes.is_empty() {
        // The reading script blanks what is over the limit or not shaped
        // as an entry, so the client never holds it whole.
        return Err(DecodeError::Oversize(0));
    }
    if bytes.len() > MAX_ENTRY {
        return Err(DecodeError::Oversize(bytes.len()));
    }
    let c: Change =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let bad = |m: &str| Err(DecodeError::Malformed(m.to_string()));
    if !is_name(&c.host) {
        return bad("host is not a host id");
    }
    match (&c.op, &c.origin, c.expires_at) {
        (Op::Add, Some(o), _) if ORIGINS.contains(&o.as_str()) => {}
        (Op::Add, _, _) => return bad("add without a known origin"),
        (Op::Del, None, None) if c.reason.is_none() => {}
        (Op::Del, ..) => return bad("del with an origin, reason or expiry"),
    }
    if c.reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON || r.chars().any(char::is_control))
    {
        return bad("reason too long or with control characters");
    }
    if c.expires_at
        .is_some_and(|t| t > now.saturating_add(MAX_TTL_SECS + 86_400))
    {
        return bad("expiry beyond the longest ttl");
    }
    Ok(c)
}

fn cut(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn good() -> Change {
        Change {
            op: Op::Add,
            list: ListName::Block,
            cidr: "203.0.113.7".parse().unwrap(),
            host: "edge-a".into(),
            origin: Some("auto-ban".into()),
            reason: Some("rule scan: 20 x 404 within 10s".into()),
            expires_at: Some(NOW + 600),
        }
    }

    #[test]
    fn round_trips_and_keys() {
        let c = good();
        assert_eq!(decode(c.encode().as_bytes(), NOW), Ok(c.clone()));
        assert_eq!(c.key(), "block|203.0.113.7");
        let d = Change::del(ListName::Allow, "10.0.0.0/8".parse().unwrap(), "b");
        assert_eq!(decode(d.encode().as_bytes(), NOW), Ok(d));
        let e = good().entry();
        assert_eq!(e.host.as_deref(), Some("edge-a"));
        // Republishing a remote entry keeps its origin host.
        assert_eq!(Change::add(&e, "edge-b").host, "edge-a");
    }

    #[test]
    fn refuses_what_is_not_a_good_entry() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty (blanked by the script)", vec![]),
            ("oversize", vec![b'{'; MAX_ENTRY + 1]),
            ("not json", b"\xff\xfe garbage".to_vec()),
            ("a number", b"42".to_vec()),
            ("unknown field", br#"{"op":"add","list":"block","cidr":"1.2.3.4","host":"a","origin":"cli","x":1}"#.to_vec()),
            ("bad cidr", br#"{"op":"add","list":"block","cidr":"1.2.3.4/99","host":"a","origin":"cli"}"#.to_vec()),
            ("bad list", br#"{"op":"add","list":"grey","cidr":"1.2.3.4","host":"a","origin":"cli"}"#.to_vec()),
            ("bad host", br#"{"op":"add","list":"block","cidr":"1.2.3.4","host":"a b","origin":"cli"}"#.to_vec()),
            ("no origin", br#"{"op":"add","list":"block","cidr":"1.2.3.4","host":"a"}"#.to_vec()),
            ("odd origin", br#"{"op":"add","list":"block","cidr":"1.2.3.4","host":"a","origin":"config"}"#.to_vec()),
            ("del with expiry", br#"{"op":"del","list":"block","cidr":"1.2.3.4","host":"a","expires_at":5}"#.to_vec()),
            ("far expiry", format!(r#"{{"op":"add","list":"block","cidr":"1.2.3.4","host":"a","origin":"cli","expires_at":{}}}"#, u64::MAX).into_bytes()),
            ("control chars", br#"{"op":"add","list":"block","cidr":"1.2.3.4","host":"a","origin":"cli","reason":"a\u001b[31m"}"#.to_vec()),
        ];
        for (what, bytes) in cases {
            assert!(decode(&bytes, NOW).is_err(), "{what} was accepted");
        }
    }

    /// Fuzz-ish: every prefix, every single-byte flip and random bytes of
    /// a good entry decode to a result (accepted entries are valid), never
    /// a panic.
    #[test]
    fn mangled_entries_never_panic() {
        let base = good().encode().into_bytes();
        let check = |b: &[u8]| {
            if let Ok(c) = decode(b, NOW) {
                assert!(is_name(&c.host));
                assert!(c.encode().len() <= MAX_ENTRY + 64);
            }
        };
        for n in 0..=base.len() {
            check(&base[..n]);
        }
        for i in 0..base.len() {
            for flip in [0x01u8, 0x20, 0x80, 0xff] {
                let mut b = base.clone();
                b[i] ^= flip;
                check(&b);
            }
        }
        const ALPHABET: &[u8] = b"{}[]\":,0123456789abcdefghijklmnopqrstuvwxyz./|-";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let len = (x % 300) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ALPHABET[(x % ALPHABET.len() as u64) as usize]
                })
                .collect();
            check(&bytes);
        }
    }
}
