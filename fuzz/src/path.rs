//! What a request path means, for the `route_path` target's check of the
//! path normaliser (docs/configuration.md, "How paths are matched"), in
//! bytes, the way a framework that decodes every escape reads it:
//!
//! ```text
//! path --decode every `%` HEXDIG HEXDIG (else refused)--> bytes
//!      an escape of `/` or `\`, a raw `\`, a NUL or control byte: refused
//!      --split on `/`, drop empty and `.` segments, `..` drops the one
//!        before (refused above the root), keep a trailing `/`--> meaning
//! ```
//!
//! The normalised path must be refused exactly when the model refuses, and
//! otherwise mean the same bytes.

/// The meaning of `path` (which starts with `/`), or `None` when it has
/// none and must be refused.
pub fn meaning(path: &str) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut decoded = Vec::with_capacity(path.len());
    let mut bytes = path.bytes();
    while let Some(b) = bytes.next() {
        let (byte, escaped) = if b == b'%' {
            let hi = hex(bytes.next()?)?;
            let lo = hex(bytes.next()?)?;
            ((hi * 16 + lo) as u8, true)
        } else {
            (b, false)
        };
        if byte < 0x20 || byte == 0x7F || byte == b'\\' || (escaped && byte == b'/') {
            return None;
        }
        // An escaped `/` was refused above, so a `/` here is a separator.
        decoded.push(byte);
    }
    resolve(&decoded)
}

/// Dot segments and empty segments of an already decoded path.
fn resolve(decoded: &[u8]) -> Option<Vec<u8>> {
    let segments: Vec<&[u8]> = decoded[1..].split(|b| *b == b'/').collect();
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut trailing = false;
    for (i, s) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *s {
            b"" | b"." => trailing = last,
            b".." => {
                kept.pop()?;
                trailing = last;
            }
            s => {
                kept.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::new();
    for s in &kept {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if kept.is_empty() || trailing {
        out.push(b'/');
    }
    Some(out)
}

/// Whether `normalised` is written in normal form: ASCII, no empty
/// segment but a trailing one, no dot segment, every escape in upper-case
/// hex and none of an unreserved character.
pub fn looks_normal(normalised: &str) -> Result<(), String> {
    if !normalised.starts_with('/') || !normalised.is_ascii() {
        return Err("not an ASCII path".into());
    }
    for bad in ["//", "/./", "/../"] {
        if normalised.contains(bad) {
            return Err(format!("contains {bad}"));
        }
    }
    if normalised.ends_with("/.") || normalised.ends_with("/..") {
        return Err("ends with a dot segment".into());
    }
    let b = normalised.as_bytes();
    for (i, _) in normalised.match_indices('%') {
        let upper = |j: usize| {
            b.get(j)
                .is_some_and(|h| matches!(h, b'0'..=b'9' | b'A'..=b'F'))
        };
        if !(upper(i + 1) && upper(i + 2)) {
            return Err(format!("escape at {i} not two upper-case hex digits"));
        }
        let d = u8::from_str_radix(&normalised[i + 1..i + 3], 16).unwrap_or(0);
        if d.is_ascii_alphanumeric() || matches!(d, b'-' | b'.' | b'_' | b'~') {
            return Err(format!("escape at {i} of an unreserved character"));
        }
    }
    Ok(())
}
