//! A parsed head's pieces as slices of one copy of the head. The parsers
//! give borrowed slices of the connection's read buffer; what outlives the
//! buffer (a request's target and header values, as `http` types) is cut
//! out of one reference-counted copy of the head instead of one allocation
//! per piece. (A response head is cut out of the upstream connection's
//! shared buffer itself, `upstream::exchange`.)

use bytes::Bytes;

/// `piece`, a slice of `parsed`, as the same bytes of `copy` (a copy of
/// `parsed`'s start): no allocation. A piece that is not in that part of
/// `parsed` (never, for the parsers' slices) is copied.
pub fn slice_of(copy: &Bytes, parsed: &[u8], piece: &[u8]) -> Bytes {
    let at = (piece.as_ptr() as usize).wrapping_sub(parsed.as_ptr() as usize);
    match at.checked_add(piece.len()) {
        Some(end) if end <= copy.len() && at <= parsed.len() => copy.slice(at..end),
        _ => Bytes::copy_from_slice(piece),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_slices_of_the_copy() {
        let parsed = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nbody".to_vec();
        let copy = Bytes::copy_from_slice(&parsed[..28]);
        let host = slice_of(&copy, &parsed, &parsed[23..24]);
        assert_eq!(&host[..], b"h");
        // The same memory as the copy: no allocation of its own.
        assert_eq!(host.as_ptr(), copy[23..].as_ptr());
        // Outside the copied head, or not of `parsed` at all: copied.
        let body = slice_of(&copy, &parsed, &parsed[28..]);
        assert_eq!(&body[..], b"body");
        let other = b"elsewhere".to_vec();
        let copied = slice_of(&copy, &parsed, &other[..4]);
        assert_eq!(&copied[..], b"else");
    }
}
