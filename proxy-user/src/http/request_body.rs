//! The request body [`super::handle`] reads: hyper's (HTTP/2), or one fed by rampart's own HTTP/1 driver
//! (`server::h1_conn`), which reads the connection and follows the body's
//! framing (`h1::body`) while the request is handled.
//!
//! The fed body and the driver share a [`Pipe`]: the body asks for data
//! (`wanted`) when it is polled and has none, the driver reads the socket
//! only then (so an `Expect: 100-continue` is answered when the body is
//! first polled, as hyper does, and a body nobody reads is never read),
//! and hands over one piece of data at a time.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::{BoxError, request_map::Picked};

/// A request's body, whichever server read its head.
pub enum RequestBody {
    Hyper(Incoming),
    Fed(Fed),
}

impl From<Incoming> for RequestBody {
    fn from(body: Incoming) -> RequestBody {
        RequestBody::Hyper(body)
    }
}

impl RequestBody {
    /// Keeps the client's request head as it came, for the upstream head
    /// to be written from its bytes (`http::proxy`, `h1::upstream_head`).
    /// It rides with the body because the body is the one part of the
    /// request that is rampart's own type: an extension would cost three
    /// allocations per request. HTTP/2 and hyper's bodies carry none.
    ///
    /// `picked`: where the values `handle` reads are in it; `map_pending`:
    /// the request's header map was not built (see [`super::request_map`]).
    /// `kept` is the head (its first `head_len` bytes) and what follows it
    /// there: where the connection's parse found its pieces
    /// (`h1::head_index`), for the upstream head.
    pub fn keep_head(&mut self, kept: Bytes, head_len: usize, picked: Picked, map_pending: bool) {
        if let RequestBody::Fed(f) = self {
            let mut kept = kept;
            // An index is short (`h1::head_index`); anything else is dropped.
            let index_len = kept.len().saturating_sub(head_len);
            f.index_len = u8::try_from(index_len).unwrap_or_else(|_| {
                kept.truncate(head_len);
                0
            });
            f.head = Some(kept);
            f.picked = picked;
            f.map_pending = map_pending;
        }
    }

    /// The kept head and where the values `handle` reads are in it.
    pub fn picked(&self) -> Option<(&Bytes, &Picked)> {
        match self {
            RequestBody::Fed(Fed {
                head: Some(head),
                picked,
                ..
            }) => Some((head, picked)),
            _ => None,
        }
    }

    /// The request's header map is still to be built from the kept head.
    pub fn map_pending(&self) -> bool {
        matches!(self, RequestBody::Fed(f) if f.map_pending && f.head.is_some())
    }

    /// The kept head if the map is still to be built from it (no longer
    /// pending after this: [`super::request_map::materialise`] builds it).
    pub fn pending_head(&mut self) -> Option<Bytes> {
        match self {
            RequestBody::Fed(f) if f.map_pending => {
                f.map_pending = false;
                let mut head = f.head.clone()?;
                head.truncate(head.len() - usize::from(f.index_len));
                Some(head)
            }
            _ => None,
        }
    }

    /// The client's request head kept by [`RequestBody::keep_head`].
    pub fn take_head(&mut self) -> Option<Bytes> {
        let (mut head, index_len) = self.take_kept()?;
        head.truncate(head.len() - usize::from(index_len));
        Some(head)
    }

    /// The kept head with its index after it (see
    /// [`RequestBody::keep_head`]), and the index's length.
    pub fn take_kept(&mut self) -> Option<(Bytes, u8)> {
        match self {
            RequestBody::Fed(f) => Some((f.head.take()?, f.index_len)),
            RequestBody::Hyper(_) => None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            RequestBody::Fed(b) => b.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::Fed(b) => b.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::Fed(b) => b.size,
        }
    }
}

/// What the driver and the body share.
#[derive(Default)]
struct Pipe {
    /// Data handed over and not taken yet.
    data: Option<Bytes>,
    /// The body ended: `Ok` whole, `Err` broken (why).
    end: Option<Result<(), &'static str>>,
    /// The body was polled and had nothing: the driver reads for it.
    wanted: bool,
    /// The body was dropped: nobody reads it any more.
    dropped: bool,
    reader: Option<Waker>,
    driver: Option<Waker>,
}

fn lock(pipe: &Mutex<Pipe>) -> MutexGuard<'_, Pipe> {
    pipe.lock().unwrap_or_else(|p| p.into_inner())
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

/// A body fed by the HTTP/1 driver.
pub struct Fed {
    pipe: Option<Arc<Mutex<Pipe>>>,
    size: SizeHint,
    done: bool,
    /// The client's request head as it came (see [`RequestBody::take_head`]).
    head: Option<Bytes>,
    /// Where in `head` the values `handle` reads on every request are.
    picked: Picked,
    /// The request's header map is empty until built from `head`.
    map_pending: bool,
    /// The length of the index at the end of `head` (the kept head's
    /// bytes are the rest; a byte, as it rides in every request).
    index_len: u8,
}

/// The driver's end of a [`Fed`] body.
pub struct Feeder {
    pipe: Arc<Mutex<Pipe>>,
}

impl Fed {
    /// No body (no length, or a length of 0).
    pub fn empty() -> RequestBody {
        RequestBody::Fed(Fed {
            pipe: None,
            size: SizeHint::with_exact(0),
            done: true,
            head: None,
            picked: Picked::default(),
            map_pending: false,
            index_len: 0,
        })
    }

    /// A body of `length` bytes (`None`: chunked), and its feeder.
    pub fn pair(length: Option<u64>) -> (RequestBody, Feeder) {
        let pipe = Arc::new(Mutex::new(Pipe::default()));
        let size = match length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        };
        let body = Fed {
            pipe: Some(pipe.clone()),
            size,
            done: false,
            head: None,
            picked: Picked::default(),
            map_pending: false,
            index_len: 0,
        };
        (RequestBody::Fed(body), Feeder { pipe })
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(pipe) = &self.pipe else {
            return Poll::Ready(None);
        };
        let mut p = lock(pipe);
        if let Some(data) = p.data.take() {
            wake(&mut p.driver);
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        match p.end {
            Some(Ok(())) => {
                drop(p);
                self.done = true;
                Poll::Ready(None)
            }
            Some(Err(why)) => Poll::Ready(Some(Err(why.into()))),
            None => {
                if !p.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    p.reader = Some(cx.waker().clone());
                }
                if !p.wanted {
                    p.wanted = true;
                    wake(&mut p.driver);
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        if let Some(pipe) = &self.pipe {
            let mut p = lock(pipe);
            p.dropped = true;
            wake(&mut p.driver);
        }
    }
}

/// What the body asks of the driver.
#[derive(Debug, PartialEq, Eq)]
pub enum Want {
    /// More data: the last piece was taken and the body was polled again.
    Data,
    /// Nothing any more: the body was dropped.
    Gone,
}

impl Feeder {
    /// Ready when the body wants data (and has taken what it was given),
    /// or was dropped.
    pub fn poll_want(&self, cx: &mut Context<'_>) -> Poll<Want> {
        let mut p = lock(&self.pipe);
        if p.dropped {
            return Poll::Ready(Want::Gone);
        }
        if p.wanted && p.data.is_none() {
            return Poll::Ready(Want::Data);
        }
        if !p.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            p.driver = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Waits until the body wants data or was dropped.
    pub async fn want(&self) -> Want {
        std::future::poll_fn(|cx| self.poll_want(cx)).await
    }

    /// Whether the body was dropped (nobody reads it any more).
    pub fn gone(&self) -> bool {
        lock(&self.pipe).dropped
    }

    /// Hands over the next piece of data.
    pub fn push(&self, data: Bytes) {
        let mut p = lock(&self.pipe);
        p.data = Some(data);
        p.wanted = false;
        wake(&mut p.reader);
    }

    /// The body ended: `Ok` whole, `Err` broken or abandoned.
    pub fn finish(&self, end: Result<(), &'static str>) {
        let mut p = lock(&self.pipe);
        if p.end.is_none() {
            p.end = Some(end);
        }
        wake(&mut p.reader);
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_fed_body_is_read_only_when_wanted() {
        let (body, feeder) = Fed::pair(Some(5));
        assert_eq!(body.size_hint().exact(), Some(5));
        let reader = tokio::spawn(async move { body.collect().await.map(|c| c.to_bytes()) });
        assert_eq!(feeder.want().await, Want::Data);
        feeder.push(Bytes::from_static(b"he"));
        assert_eq!(feeder.want().await, Want::Data);
        feeder.push(Bytes::from_static(b"llo"));
        assert_eq!(feeder.want().await, Want::Data);
        feeder.finish(Ok(()));
        assert_eq!(&reader.await.unwrap().unwrap()[..], b"hello");
        assert_eq!(feeder.want().await, Want::Gone);

        let (mut body, feeder) = Fed::pair(None);
        let reader = tokio::spawn(async move { body.frame().await.map(|f| f.is_err()) });
        assert_eq!(feeder.want().await, Want::Data);
        feeder.finish(Err("chunk size missing"));
        assert_eq!(reader.await.unwrap(), Some(true));
        assert!(Fed::empty().is_end_stream());
    }
}
