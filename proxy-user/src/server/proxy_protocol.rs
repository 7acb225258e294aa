//! The PROXY protocol, v1 and v2, on a listener with `proxy_protocol =
//! true` (HAProxy `accept-proxy`; nginx `listen ... proxy_protocol`): the
//! load balancer in front sends one header naming the client before any
//! other byte (before a TLS ClientHello too), and that address becomes the
//! connection's client, with the load balancer kept in `ConnInfo::via`.
//!
//! Strict, as the protocol requires (haproxy.org proxy-protocol.txt, 2.1 and
//! 2.2): a connection on such a listener that does not start with a valid
//! header, or whose header does not arrive whole within `header_timeout`,
//! is closed without an answer. `LOCAL` (v2) and `UNKNOWN` (v1), which load
//! balancers send for their own health checks, keep the peer as the client.
//!
//! The header is read exactly, never a byte of what follows (the HTTP head
//! or the TLS ClientHello stays in the socket for the usual path): v2 by its
//! length field; v1 by a peek for its CRLF (the sender writes the header in
//! one segment; byte-at-a-time reads take over if it did not). An own parser
//! rather than the `ppp` crate: `ppp` parses a buffer already read, while
//! the work here is reading no more than the header from the socket, and
//! the address block is all we keep (about 60 lines of parsing, fuzz-free
//! since every length is checked against a fixed bound first).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use tokio::{io::AsyncReadExt, net::TcpStream, sync::watch};

use super::{
    lifecycle::Timeouts,
    lot::{Conn, Lot},
};
use crate::http::ConnInfo;

/// v2's signature (proxy-protocol.txt 2.2).
const V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// v1's longest header, CRLF included (proxy-protocol.txt 2.1).
const V1_MAX: usize = 107;
/// The largest v2 address block accepted: the addresses (36 bytes for
/// IPv6, 216 for unix) and the TLVs load balancers add (a few dozen bytes
/// from AWS, Azure, GCP), with room to spare; a bound, so that a header
/// cannot make a connection hold 64 KiB.
const V2_MAX_LEN: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header (the connection began with {0:?})")]
    Missing(String),
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
    #[error("closed before the PROXY header was whole")]
    Closed,
    #[error("no whole PROXY header within {0:?}")]
    TimedOut(Duration),
    #[error("reading the PROXY header: {0}")]
    Io(String),
}

/// `info` with the client the header on `stream` names (within `limit`),
/// the peer kept in `via`; `None` when the connection must close.
pub async fn accepted(stream: &mut TcpStream, info: ConnInfo, limit: Duration) -> Option<ConnInfo> {
    match read(stream, limit).await {
        Ok(Some(client)) => Some(ConnInfo {
            client,
            via: Some(info.client.ip()),
            ..info
        }),
        Ok(None) => Some(info),
        Err(e) => {
            log::debug!("{}: closed: {e}", info.client);
            None
        }
    }
}

/// A plain connection on a `proxy_protocol` listener: its header read in a
/// task of its own, then on to the lot as any other.
pub(super) async fn then_plain(
    stream: std::net::TcpStream,
    mut conn: Conn,
    lot: Lot,
    draining: watch::Receiver<bool>,
) {
    let client = conn.info.client;
    let mut stream = match TcpStream::from_std(stream) {
        Ok(s) => s,
        Err(e) => return log::warn!("{client}: {e}"),
    };
    let limit = Timeouts::of(&conn.snapshot.config.http).proxy_header();
    let Some(info) = accepted(&mut stream, conn.info, limit).await else {
        return;
    };
    conn.info = info;
    let stream = match stream.into_std() {
        Ok(s) => s,
        Err(e) => return log::warn!("{client}: {e}"),
    };
    if let Some(ready) = lot.arrive(stream, conn) {
        super::plain::serve(ready, lot, draining).await;
    }
}

/// Reads the header from `stream` within `limit`: the client it names, or
/// `None` for `LOCAL`/`UNKNOWN` (the peer itself).
pub async fn read(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    tokio::time::timeout(limit, read_header(stream))
        .await
        .map_err(|_| ProxyHeaderError::TimedOut(limit))?
}

async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut start = [0u8; 16];
    // The shortest v1 header, `PROXY UNKNOWN\r\n`, is 15 bytes: read 8
    // first, enough to tell the versions apart.
    read_exact(stream, &mut start[..8]).await?;
    if start.starts_with(b"PROXY ") {
        let mut line = start[..8].to_vec();
        read_v1_rest(stream, &mut line).await?;
        return parse_v1(&line);
    }
    if start[..8] != V2_SIG[..8] {
        return Err(ProxyHeaderError::Missing(
            String::from_utf8_lossy(&start[..8]).into_owned(),
        ));
    }
    read_exact(stream, &mut start[8..]).await?;
    if start[..12] != V2_SIG {
        return Err(ProxyHeaderError::V2("bad signature"));
    }
    let len = usize::from(u16::from_be_bytes([start[14], start[15]]));
    if len > V2_MAX_LEN {
        return Err(ProxyHeaderError::V2("address block too long"));
    }
    let mut block = vec![0u8; len];
    read_exact(stream, &mut block).await?;
    parse_v2(start[12], start[13], &block)
}

async fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), ProxyHeaderError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyHeaderError::Closed),
        Err(e) => Err(ProxyHeaderError::Io(e.to_string())),
    }
}

/// The rest of a v1 line, up to its CRLF and not a byte past it.
async fn read_v1_rest(stream: &mut TcpStream, line: &mut Vec<u8>) -> Result<(), ProxyHeaderError> {
    let mut peeked = [0u8; V1_MAX];
    let n = stream
        .peek(&mut peeked[..V1_MAX - line.len()])
        .await
        .map_err(|e| ProxyHeaderError::Io(e.to_string()))?;
    let mut joined = line.clone();
    joined.extend_from_slice(&peeked[..n]);
    if let Some(end) = joined.windows(2).position(|w| w == b"\r\n") {
        let take = end + 2 - line.len();
        let mut rest = vec![0u8; take];
        read_exact(stream, &mut rest).await?;
        line.extend_from_slice(&rest);
        return Ok(());
    }
    // Not all there yet: a byte at a time (rare; bounded by V1_MAX).
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyHeaderError::V1("no CRLF within 107 bytes"));
        }
        let mut b = [0u8; 1];
        read_exact(stream, &mut b).await?;
        line.push(b[0]);
    }
    Ok(())
}

/// `PROXY TCP4 SRC DST SPORT DPORT\r\n`, `PROXY TCP6 ...`, `PROXY UNKNOWN ...`.
fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::V1("not ASCII"))?;
    let text = text
        .strip_suffix("\r\n")
        .ok_or(ProxyHeaderError::V1("no CRLF"))?;
    let mut parts = text.split(' ');
    parts.next(); // "PROXY"
    match parts.next() {
        Some("UNKNOWN") => return Ok(None),
        Some("TCP4" | "TCP6") => {}
        _ => {
            return Err(ProxyHeaderError::V1(
                "protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    }
    let v6 = text.as_bytes()[6..].starts_with(b"TCP6");
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields[..] else {
        return Err(ProxyHeaderError::V1(
            "expected four fields after the protocol",
        ));
    };
    let ip: IpAddr = if v6 {
        IpAddr::V6(
            src.parse()
                .map_err(|_| ProxyHeaderError::V1("bad TCP6 source"))?,
        )
    } else {
        IpAddr::V4(
            src.parse()
                .map_err(|_| ProxyHeaderError::V1("bad TCP4 source"))?,
        )
    };
    let port: u16 = sport
        .parse()
        .map_err(|_| ProxyHeaderError::V1("bad source port"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// The address block after the 16-byte v2 header.
fn parse_v2(ver_cmd: u8, fam: u8, block: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2("version is not 2"));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(None), // LOCAL: the balancer's own connection
        1 => {}
        _ => return Err(ProxyHeaderError::V2("command is neither LOCAL nor PROXY")),
    }
    match fam {
        // TCP or UDP over IPv4: src, dst, sport, dport.
        0x11 | 0x12 => {
            let b: &[u8; 12] = block
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(ProxyHeaderError::V2("IPv4 address block too short"))?;
            let ip = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[8], b[9]]),
            )))
        }
        0x21 | 0x22 => {
            let b: &[u8; 36] = block
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(ProxyHeaderError::V2("IPv6 address block too short"))?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&b[..16]);
            let ip = Ipv6Addr::from(src);
            Ok(Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([b[32], b[33]]),
            )))
        }
        // UNSPEC or a unix socket: nothing to key a client on.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncWriteExt, net::TcpListener};

    use super::*;

    /// Sends `bytes` on a real connection; the header read, and what was
    /// left in the socket after it.
    async fn over_tcp(bytes: Vec<u8>) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(&bytes).await.unwrap();
            c.shutdown().await.unwrap();
        });
        let (mut s, _) = l.accept().await.unwrap();
        let got = read(&mut s, Duration::from_secs(2)).await;
        let mut rest = Vec::new();
        if got.is_ok() {
            s.read_to_end(&mut rest).await.unwrap();
        }
        writer.await.unwrap();
        (got, rest)
    }

    fn v2(cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut b = V2_SIG.to_vec();
        b.push(0x20 | cmd);
        b.push(fam);
        b.extend_from_slice(&(block.len() as u16).to_be_bytes());
        b.extend_from_slice(block);
        b
    }

    #[tokio::test]
    async fn v1_and_v2_name_the_client_and_leave_the_rest() {
        let (got, rest) =
            over_tcp(b"PROXY TCP4 198.51.100.7 10.0.0.1 40000 443\r\nGET / HTTP/1.1\r\n".to_vec())
                .await;
        assert_eq!(got, Ok(Some("198.51.100.7:40000".parse().unwrap())));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (got, _) = over_tcp(b"PROXY TCP6 2001:db8::7 2001:db8::1 5 443\r\n".to_vec()).await;
        assert_eq!(got, Ok(Some("[2001:db8::7]:5".parse().unwrap())));
        let (got, rest) = over_tcp(b"PROXY UNKNOWN\r\nX".to_vec()).await;
        assert_eq!((got, rest), (Ok(None), b"X".to_vec()));

        let mut block = vec![198, 51, 100, 9, 10, 0, 0, 1, 0x9c, 0x40, 1, 187];
        block.extend_from_slice(&[0x04, 0, 1, 0xaa]); // a TLV, skipped
        let mut bytes = v2(1, 0x11, &block);
        bytes.extend_from_slice(b"\x16\x03\x01"); // a ClientHello follows
        let (got, rest) = over_tcp(bytes).await;
        assert_eq!(got, Ok(Some("198.51.100.9:40000".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");
        let mut block6 = vec![0u8; 36];
        block6[..16].copy_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        block6[32..34].copy_from_slice(&7u16.to_be_bytes());
        let (got, _) = over_tcp(v2(1, 0x21, &block6)).await;
        assert_eq!(got, Ok(Some("[2001:db8::9]:7".parse().unwrap())));
        let (got, _) = over_tcp(v2(0, 0x00, &[])).await;
        assert_eq!(got, Ok(None), "LOCAL: the balancer's health check");
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
                "no PROXY protocol header",
            ),
            (
                b"\x16\x03\x01\x00\xa5\x01\x00\x00".to_vec(),
                "no PROXY protocol header",
            ),
            (b"PROXY TCP4 1.2.3.4\r\n".to_vec(), "four fields"),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n".to_vec(),
                "bad source port",
            ),
            (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 1\r\n".to_vec(), "not TCP4"),
            (
                [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat(),
                "no CRLF within",
            ),
            (b"PROXY TCP4 1.2".to_vec(), "closed before"),
            (v2(1, 0x11, &[1, 2, 3]), "too short"),
            (v2(2, 0x11, &[0; 12]), "neither LOCAL nor PROXY"),
            (
                [&V2_SIG[..], &[0x21, 0x11, 0xff, 0xff]].concat(),
                "address block too long",
            ),
        ];
        for (bytes, want) in cases {
            let (got, _) = over_tcp(bytes.clone()).await;
            let e = got.expect_err(&String::from_utf8_lossy(&bytes));
            assert!(e.to_string().contains(want), "{e} for {bytes:?}");
        }
    }

    #[tokio::test]
    async fn a_header_that_never_completes_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        c.write_all(b"PROXY TCP4 ").await.unwrap();
        let (mut s, _) = l.accept().await.unwrap();
        let limit = Duration::from_millis(200);
        assert_eq!(
            read(&mut s, limit).await,
            Err(ProxyHeaderError::TimedOut(limit))
        );
    }
}
