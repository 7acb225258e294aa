//! Where the first parse of a request head found its pieces, kept with the
//! copy of the head (issue 17): rampart's HTTP/1 server parses the
//! client's head once (`server::h1_conn`), and the upstream head is
//! written from the same bytes (`http::raw_head`). With this index that
//! second writer walks the method's and each header line's places instead
//! of parsing the head again.
//!
//! The index is written into the head's copy, after the head ([`keep`]):
//! the request carries one allocation and one length as before, not a
//! table (a table in the request is moved with it through every future
//! that holds it: a 160-byte one cost more in copies than the parse it
//! saved). A head with more than [`LINES`] headers, or longer than
//! 64 KiB, has none, and the upstream head is written from a second parse
//! as before.
//!
//! ```text
//! kept: head bytes | framing (1 + 8) | method at, len (2 + 2) | count (1) | count × (name at, len, value at, len) (2 each)
//! ```

use bytes::Bytes;

use super::{Framing, request::Request, upstream_head::Parts};

/// Header lines an index holds.
pub const LINES: usize = 16;

/// The index's bytes before its lines.
const FIXED: usize = 1 + 8 + 4 + 1;
/// Bytes per header line: its name's place and its value's.
const LINE: usize = 8;

/// A copy of `head`'s first `req.head_len` bytes (`req` parsed from
/// `head`), followed by their index when they have one: the kept head is
/// `kept[..req.head_len]`, its index `kept[req.head_len..]` (empty when
/// none).
pub fn keep(head: &[u8], req: &Request<'_, '_>) -> Bytes {
    let head = &head[..req.head_len];
    let indexed = req.headers.len() <= LINES && head.len() <= usize::from(u16::MAX);
    let size = if indexed {
        FIXED + LINE * req.headers.len()
    } else {
        0
    };
    let mut kept = Vec::with_capacity(head.len() + size);
    kept.extend_from_slice(head);
    if indexed && !append(&mut kept, head, req) {
        kept.truncate(head.len());
    }
    Bytes::from(kept)
}

/// Appends `req`'s index to `kept`; `false` when a piece is not of `head`
/// (never, for the parser's slices).
fn append(kept: &mut Vec<u8>, head: &[u8], req: &Request<'_, '_>) -> bool {
    let (tag, length) = match req.framing {
        Framing::Empty => (0, 0),
        Framing::Length(n) => (1, n),
        Framing::Chunked => (2, 0),
        Framing::Close => (3, 0),
    };
    kept.push(tag);
    kept.extend_from_slice(&length.to_le_bytes());
    if !place(kept, head, req.method.as_bytes()) {
        return false;
    }
    // At most `LINES`: checked by the caller.
    kept.push(req.headers.len() as u8);
    req.headers
        .iter()
        .all(|h| place(kept, head, h.name.as_bytes()) && place(kept, head, h.value))
}

/// Appends where `piece`, a slice of `head`, is; `false` if it is not one.
fn place(kept: &mut Vec<u8>, head: &[u8], piece: &[u8]) -> bool {
    let at = (piece.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize);
    if at
        .checked_add(piece.len())
        .is_none_or(|end| end > head.len())
    {
        return false;
    }
    let (Ok(at), Ok(len)) = (u16::try_from(at), u16::try_from(piece.len())) else {
        return false;
    };
    kept.extend_from_slice(&at.to_le_bytes());
    kept.extend_from_slice(&len.to_le_bytes());
    true
}

/// The piece of `head` at the place in `place` (at, length).
fn piece<'b>(head: &'b [u8], place: &[u8]) -> Option<&'b [u8]> {
    let at = usize::from(u16::from_le_bytes([*place.first()?, *place.get(1)?]));
    let len = usize::from(u16::from_le_bytes([*place.get(2)?, *place.get(3)?]));
    head.get(at..at + len)
}

/// The head's pieces the upstream head is written from, from `index` (what
/// [`keep`] wrote after `head`), the headers in `slots`; `None` when
/// there is no index, or the head has no `Host` header (the host is then
/// the target's, which the index does not keep: the caller parses).
pub fn parts<'b, 'h>(
    head: &'b [u8],
    index: &[u8],
    slots: &'h mut [httparse::Header<'b>; LINES],
) -> Option<Parts<'b, 'h>> {
    let (fixed, lines) = index.split_first_chunk::<FIXED>()?;
    let (tag, rest) = fixed.split_first()?;
    let (length, rest) = rest.split_first_chunk::<8>()?;
    let (method, count) = rest.split_first_chunk::<4>()?;
    let framing = match tag {
        0 => Framing::Empty,
        1 => Framing::Length(u64::from_le_bytes(*length)),
        2 => Framing::Chunked,
        _ => Framing::Close,
    };
    let method = std::str::from_utf8(piece(head, method)?).ok()?;
    let count = usize::from(*count.first()?);
    if count > LINES || lines.len() != count * LINE {
        return None;
    }
    let mut host = None;
    for (slot, line) in slots.iter_mut().zip(lines.chunks_exact(LINE)) {
        let name = std::str::from_utf8(piece(head, &line[..4])?).ok()?;
        let value = piece(head, &line[4..])?;
        if host.is_none() && name.eq_ignore_ascii_case("host") {
            host = Some(value);
        }
        *slot = httparse::Header { name, value };
    }
    Some(Parts {
        method,
        headers: &slots[..count],
        host: Some(host?),
        framing,
        head_len: head.len(),
    })
}
