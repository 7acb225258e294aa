//! Following a body as it is forwarded: a `Content-Length` counter, and a
//! chunked decoder that checks the framing byte by byte while the bytes
//! themselves pass through unchanged (no re-encoding, no buffer of its own:
//! the state is a few integers, so any read size works, one byte included).
//!
//! The chunked grammar and its limits are hyper's (`proto/h1/decode.rs`),
//! so a body refused today is refused here: a size of hex digits (at least
//! one, no overflow), optional spaces or tabs, `;` extensions (no LF, at
//! most 16 KiB in a body), CRLF everywhere (a bare LF is refused), data
//! followed by CRLF, and after the last chunk trailer lines (at most
//! `max_trailer` bytes and `max_trailers` lines) and CRLF.

use super::{
    Framing,
    error::{Blame, H1Error},
};

/// hyper's `CHUNKED_EXTENSIONS_LIMIT`.
const MAX_EXTENSIONS: u64 = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Bytes of a `Content-Length` body still to come.
    Left(u64),
    /// Until the connection closes.
    Close,
    /// The first digit of a chunk size.
    Start,
    Size,
    /// White space after the size.
    SizeLws,
    Extension,
    SizeLf,
    /// Data bytes of the chunk still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk's line: CR of the end, or a trailer's first byte.
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Limits on what a body may hold beyond its data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Bytes of trailer lines (hyper: the head size limit, 16 KiB unset).
    pub max_trailer: usize,
    /// Trailer lines (hyper: the header count limit).
    pub max_trailers: usize,
}

impl Default for BodyLimits {
    fn default() -> BodyLimits {
        BodyLimits {
            max_trailer: 16 * 1024,
            max_trailers: 100,
        }
    }
}

/// One body being followed.
#[derive(Clone, Debug)]
pub struct Body {
    state: State,
    size: u64,
    extensions: u64,
    trailer_bytes: usize,
    trailers: usize,
    limits: BodyLimits,
    /// Whose body it is: a broken request body is a 400, a response's 502.
    blame: Blame,
}

/// What [`Body::advance`] did with its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Bytes of the input that belong to the body (forward them as they
    /// are); the rest, if any, is what follows the body.
    pub used: usize,
    /// The body has ended.
    pub done: bool,
}

/// What [`Body::next_data`] found: the bytes it consumed (`used`), the
/// data among them (`data`, at their end), and whether the body ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub used: usize,
    pub data: std::ops::Range<usize>,
    pub done: bool,
}

impl Body {
    /// Follows a body framed as `framing`, from `blame`'s side.
    pub fn new(framing: Framing, blame: Blame, limits: BodyLimits) -> Body {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Left(n),
            Framing::Chunked => State::Start,
            Framing::Close => State::Close,
        };
        Body {
            state,
            size: 0,
            extensions: 0,
            trailer_bytes: 0,
            trailers: 0,
            limits,
            blame,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes that must still arrive before anything else can (the
    /// rest of a length, or of the chunk being read), for the socket's
    /// receive low-water mark.
    pub fn data_left(&self) -> Option<u64> {
        match self.state {
            State::Left(n) | State::Data(n) => Some(n),
            _ => None,
        }
    }

    /// The connection closed: fine only for a body read to the close (or
    /// one already over).
    pub fn at_eof(&mut self) -> Result<(), H1Error> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(self.fault("body cut short")),
        }
    }

    fn fault(&self, why: &'static str) -> H1Error {
        H1Error::on(self.blame, why)
    }

    /// Follows `input`, the next bytes read; stops at the body's end.
    pub fn advance(&mut self, input: &[u8]) -> Result<Step, H1Error> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Close => i = input.len(),
                State::Left(n) | State::Data(n) => {
                    let take = n.min((input.len() - i) as u64);
                    i += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Left(_), 0) => State::Done,
                        (State::Left(_), _) => State::Left(left),
                        (_, 0) => State::DataCr,
                        _ => State::Data(left),
                    };
                }
                _ => {
                    self.byte(input[i])?;
                    i += 1;
                }
            }
        }
        Ok(Step {
            used: i,
            done: self.state == State::Done,
        })
    }

    /// Follows `input` up to the end of its first run of data bytes, for a
    /// reader that wants the body's data rather than its framing: the
    /// framing bytes before the run are checked and consumed, and the run
    /// is `input[data]`. Call again with the rest (`input[used..]`).
    pub fn next_data(&mut self, input: &[u8]) -> Result<Piece, H1Error> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Close => {
                    return Ok(Piece {
                        used: input.len(),
                        data: i..input.len(),
                        done: false,
                    });
                }
                State::Left(n) | State::Data(n) => {
                    let take = n.min((input.len() - i) as u64) as usize;
                    self.advance(&input[i..i + take])?;
                    return Ok(Piece {
                        used: i + take,
                        data: i..i + take,
                        done: self.state == State::Done,
                    });
                }
                _ => {
                    self.byte(input[i])?;
                    i += 1;
                }
            }
        }
        Ok(Piece {
            used: i,
            data: i..i,
            done: self.state == State::Done,
        })
    }

    /// One byte of chunked framing.
    fn byte(&mut self, b: u8) -> Result<(), H1Error> {
        self.state = match (self.state, b) {
            (State::Start | State::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(digit))
                    .ok_or(self.fault("chunk size overflows"))?;
                State::Size
            }
            (State::Start, _) => return Err(self.fault("chunk size missing")),
            (State::Size | State::SizeLws, b' ' | b'\t') => State::SizeLws,
            (State::Size | State::SizeLws, b';') => State::Extension,
            (State::Size | State::SizeLws | State::Extension, b'\r') => State::SizeLf,
            (State::Size | State::SizeLws, _) => return Err(self.fault("invalid chunk size line")),
            (State::Extension, b'\n') => return Err(self.fault("line feed in chunk extension")),
            (State::Extension, _) => {
                self.extensions += 1;
                if self.extensions >= MAX_EXTENSIONS {
                    return Err(self.fault("chunk extensions too large"));
                }
                State::Extension
            }
            (State::SizeLf, b'\n') if self.size == 0 => State::EndCr,
            (State::SizeLf, b'\n') => State::Data(std::mem::take(&mut self.size)),
            (State::SizeLf, _) => return Err(self.fault("chunk size line not ended by CRLF")),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Start,
            (State::DataCr | State::DataLf, _) => {
                return Err(self.fault("chunk data not ended by CRLF"));
            }
            (State::EndCr, b'\r') => State::EndLf,
            (State::EndCr | State::Trailer, _) => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.limits.max_trailer {
                    return Err(self.fault("trailers too large"));
                }
                if b == b'\r' {
                    State::TrailerLf
                } else {
                    State::Trailer
                }
            }
            (State::TrailerLf, b'\n') => {
                if self.trailers >= self.limits.max_trailers {
                    return Err(self.fault("too many trailers"));
                }
                self.trailers += 1;
                State::EndCr
            }
            (State::TrailerLf, _) => return Err(self.fault("trailer not ended by CRLF")),
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(self.fault("chunked body not ended by CRLF")),
            (State::Left(_) | State::Data(_) | State::Close | State::Done, _) => self.state,
        };
        Ok(())
    }
}

#[cfg(test)]
#[path = "body_tests.rs"]
mod tests;
