//! An HTTP/1.1 connection to one upstream server: its socket (under the
//! send-stall timeout) and what it read past the last message. An
//! exchange on it (`exchange.rs`) writes a request and reads the response
//! head; the response body (`response_body.rs`) reads the rest and hands
//! the connection back to the pool.

use bytes::BytesMut;

use super::{stall::WriteStall, stream::Stream};

/// An HTTP/1.1 connection to one server, with what it read past the last
/// message.
#[derive(Debug)]
pub struct Conn {
    pub(super) io: WriteStall<Stream>,
    pub(super) buf: BytesMut,
}

impl Conn {
    pub fn new(io: WriteStall<Stream>) -> Conn {
        Conn {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle connection can carry the next request.
    pub fn usable(&self) -> bool {
        self.buf.is_empty() && self.io.get_ref().usable_after_idle()
    }
}
