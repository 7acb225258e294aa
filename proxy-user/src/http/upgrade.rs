//! The client's side of an upgrade (a WebSocket's 101): the raw
//! connection, once the 101 has been written, with any bytes the client
//! sent after its request head. hyper hands it over through
//! `hyper::upgrade::on`; rampart's own HTTP/1 driver (`server::h1_conn`)
//! through an [`Offer`] in the request's extensions, which [`on`] takes
//! first.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    sync::oneshot,
};

/// A client stream, whatever it is (plain or TLS, guarded).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The upgraded client connection: bytes read past the request head
/// first, then the stream.
pub struct Upgraded {
    prefix: Vec<u8>,
    at: usize,
    io: Box<dyn Io>,
}

impl Upgraded {
    pub fn new(prefix: Vec<u8>, io: Box<dyn Io>) -> Upgraded {
        Upgraded { prefix, at: 0, io }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Put in a request's extensions by the driver that can upgrade it: where
/// the connection comes once a 101 has been written.
#[derive(Clone)]
pub struct Offer(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl Offer {
    /// An offer, and the sender the driver hands the connection to.
    pub fn new() -> (Offer, oneshot::Sender<Upgraded>) {
        let (tx, rx) = oneshot::channel();
        (Offer(Arc::new(Mutex::new(Some(rx)))), tx)
    }
}

/// The client connection of an upgrade, once it comes.
pub enum Pending {
    Hyper(hyper::upgrade::OnUpgrade),
    Own(Option<oneshot::Receiver<Upgraded>>),
}

/// The pending upgrade of `req`'s connection.
pub fn on<B>(req: &mut Request<B>) -> Pending {
    match req.extensions_mut().remove::<Offer>() {
        Some(offer) => Pending::Own(offer.0.lock().unwrap_or_else(|p| p.into_inner()).take()),
        None => Pending::Hyper(hyper::upgrade::on(req)),
    }
}

impl Pending {
    /// The connection, or `None` if the upgrade did not happen.
    pub async fn connection(self) -> Option<Box<dyn Io>> {
        match self {
            Pending::Hyper(on) => match on.await {
                Ok(up) => Some(Box::new(TokioIo::new(up))),
                Err(_) => None,
            },
            Pending::Own(Some(rx)) => match rx.await {
                Ok(up) => Some(Box::new(up)),
                Err(_) => None,
            },
            Pending::Own(None) => None,
        }
    }
}
