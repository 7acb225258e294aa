//! The HTTP/2 client connection preface on a connection where TLS ALPN
//! chose `h2`: such a connection speaks only HTTP/2, so anything else is
//! a connection error of type PROTOCOL_ERROR (RFC 9113 §3.4), not an
//! HTTP/1 request to answer with a 400.
//!
//! hyper (with `http2_only`) and the h2 crate refuse a bad preface too, but
//! close without a GOAWAY, which §3.4 allows. Reading the preface here
//! first lets the connection say why, as h2spec (3.5/2) and careful peers
//! expect: the server preface (an empty SETTINGS frame) and a GOAWAY with
//! PROTOCOL_ERROR, then close. A good preface is handed on to hyper with
//! the rest of the stream; the protocol itself stays h2's.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An empty SETTINGS frame (the server connection preface), then GOAWAY
/// with last stream 0 and PROTOCOL_ERROR (0x1) (RFC 9113 §4.1, §6.5, §6.8).
const REFUSAL: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, length 0, stream 0
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, length 8, stream 0
    0, 0, 0, 0, // last stream id
    0, 0, 0, 0x1, // PROTOCOL_ERROR
];

/// Why the preface was not read.
#[derive(Debug, PartialEq, Eq)]
pub enum NoPreface {
    /// Bytes that are not the preface: refused with a GOAWAY.
    Invalid,
    /// The client closed the connection (or it failed) first.
    Closed,
}

/// Reads the client preface from `stream`; `Ok` with the bytes read (the
/// preface and whatever followed it in the same reads), for hyper to read
/// first. A mismatch is found as soon as its first wrong byte arrives and
/// answered with [`REFUSAL`]. The caller bounds the wait.
pub async fn read<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> Result<Vec<u8>, NoPreface> {
    let mut got = Vec::with_capacity(PREFACE.len());
    while got.len() < PREFACE.len() {
        let before = got.len();
        match stream.read_buf(&mut got).await {
            Ok(0) | Err(_) => return Err(NoPreface::Closed),
            Ok(_) => {}
        }
        let upto = got.len().min(PREFACE.len());
        if got[before.min(upto)..upto] != PREFACE[before.min(upto)..upto] {
            let _ = stream.write_all(&REFUSAL).await;
            let _ = stream.shutdown().await;
            return Err(NoPreface::Invalid);
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_preface_is_passed_on_and_anything_else_gets_a_goaway() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let reading = tokio::spawn(async move { read(&mut server).await });
        client.write_all(&PREFACE[..5]).await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(&PREFACE[5..]).await.unwrap();
        client.write_all(b"\0\0\0\x04").await.unwrap();
        let got = reading.await.unwrap().unwrap();
        assert!(got.starts_with(PREFACE));

        // An HTTP/1 request: refused at its first wrong byte, without
        // waiting for 24 bytes.
        let (mut client, mut server) = tokio::io::duplex(256);
        let reading = tokio::spawn(async move { read(&mut server).await });
        client.write_all(b"GET").await.unwrap();
        assert_eq!(reading.await.unwrap(), Err(NoPreface::Invalid));
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, REFUSAL);
        // The GOAWAY's error code is PROTOCOL_ERROR.
        assert_eq!(answer[9 + 3], 0x7);
        assert_eq!(u32::from_be_bytes(answer[22..26].try_into().unwrap()), 1);
    }
}
