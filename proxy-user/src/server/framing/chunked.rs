//! Following a chunked request body (RFC 9112 §7.1) byte by byte, as the
//! framing check must to find where the next request head starts: chunk
//! sizes, their data, the line ends after it, and the trailer section.
//! It only follows; hyper decodes the body.

/// Where the check is inside a chunked body.
#[derive(Debug, Clone, Copy)]
pub(super) enum Chunk {
    /// A chunk-size line: the size so far, its digits, and whether a
    /// chunk extension (ignored) has begun.
    Size { value: u64, digits: u8, ext: bool },
    /// A chunk's data: how many bytes are left.
    Data(u64),
    /// The line end after a chunk's data (`cr`: its CR was seen).
    DataEnd { cr: bool },
    /// The trailer section, after the last chunk (`line_start`: at the
    /// start of a line, where an empty line ends the body).
    Trailer { line_start: bool },
}

impl Chunk {
    /// The start of a chunked body: its first chunk-size line.
    pub(super) const START: Chunk = Chunk::Size {
        value: 0,
        digits: 0,
        ext: false,
    };
}

/// Follows chunked framing; `Some((bytes used, body done))`, `None` when the
/// framing is broken (hyper answers 400 and closes).
pub(super) fn feed(chunk: &mut Chunk, data: &[u8]) -> Option<(usize, bool)> {
    let mut i = 0;
    while i < data.len() {
        let b = data[i];
        match chunk {
            Chunk::Size { value, digits, ext } => {
                i += 1;
                match b {
                    b'\n' if *digits == 0 => return None,
                    b'\n' if *value == 0 => *chunk = Chunk::Trailer { line_start: true },
                    b'\n' => *chunk = Chunk::Data(*value),
                    _ if *ext => {}
                    b';' | b' ' | b'\t' => *ext = true,
                    b'\r' => {}
                    _ => {
                        let d = (b as char).to_digit(16)?;
                        *digits += 1;
                        if *digits > 15 {
                            return None;
                        }
                        *value = *value * 16 + d as u64;
                    }
                }
            }
            Chunk::Data(left) => {
                let n = (*left).min((data.len() - i) as u64);
                *left -= n;
                i += n as usize;
                if *left == 0 {
                    *chunk = Chunk::DataEnd { cr: false };
                }
            }
            Chunk::DataEnd { cr } => {
                i += 1;
                match b {
                    b'\r' if !*cr => *cr = true,
                    b'\n' => *chunk = Chunk::START,
                    _ => return None,
                }
            }
            Chunk::Trailer { line_start } => {
                i += 1;
                match b {
                    b'\n' if *line_start => return Some((i, true)),
                    b'\n' => *line_start = true,
                    b'\r' => {}
                    _ => *line_start = false,
                }
            }
        }
    }
    Some((i, false))
}
