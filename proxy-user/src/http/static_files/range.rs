//! Byte ranges of a static file (RFC 9110 §14): one `bytes=` range is
//! answered with 206, several with the whole file; the bytes are read at
//! once when small, else streamed a chunk at a time.

use std::path::Path;

use bytes::Bytes;

use crate::http::{Body, BoxError, ProxyError, full};

#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeSpec {
    /// No usable single range: serve the whole file.
    Ignore,
    Satisfiable(std::ops::Range<u64>),
    Unsatisfiable,
}

/// A single `bytes=` range; several ranges are answered with the whole file.
pub(super) fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    // Digits only (`u64::from_str` takes a `+`); past u64 the range is
    // ignored. The last byte may be u64::MAX: `end + 1` saturates.
    let number = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let range = match (number(a), number(b)) {
        (Some(start), Some(end)) if start <= end => start..end.saturating_add(1).min(len),
        (Some(_), Some(_)) => return RangeSpec::Ignore,
        (Some(start), None) if b.is_empty() => start..len,
        (None, Some(suffix)) if a.is_empty() => len.saturating_sub(suffix)..len,
        _ => return RangeSpec::Ignore,
    };
    if range.start >= len || range.is_empty() {
        RangeSpec::Unsatisfiable
    } else {
        RangeSpec::Satisfiable(range)
    }
}

/// Files up to this size are read into memory at once; larger ones stream.
const READ_WHOLE: u64 = 256 << 10;
/// Chunk size when streaming a file.
const CHUNK: usize = 64 << 10;

/// The bytes of `range` of the file, read at once when small, else streamed.
pub(super) async fn read_range(
    path: &Path,
    range: std::ops::Range<u64>,
) -> Result<Body, ProxyError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let io = |e: std::io::Error| ProxyError::Internal(format!("{}: {e}", path.display()));
    let mut f = tokio::fs::File::open(path).await.map_err(io)?;
    f.seek(std::io::SeekFrom::Start(range.start))
        .await
        .map_err(io)?;
    let len = range.end - range.start;
    if len <= READ_WHOLE {
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).await.map_err(io)?;
        return Ok(full(buf));
    }
    Ok(http_body_util::BodyExt::boxed(FileBody {
        file: f,
        remaining: len,
    }))
}

/// A file streamed in chunks, never more than one chunk in memory.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = (self.remaining as usize).min(CHUNK);
        let mut buf = vec![0u8; want];
        let mut read_buf = tokio::io::ReadBuf::new(&mut buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut self.file), cx, &mut read_buf)
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(Ok(())) => {
                let n = read_buf.filled().len();
                if n == 0 {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    );
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                self.remaining -= n as u64;
                buf.truncate(n);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Satisfiable(0..10));
        assert_eq!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90..100)
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90..100)
        );
        assert_eq!(
            parse_range("bytes=95-200", 100),
            RangeSpec::Satisfiable(95..100)
        );
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
    }

    /// Extreme values neither overflow (a panic in debug builds) nor
    /// serve what was not asked for (issue 13).
    #[test]
    fn extreme_ranges_neither_overflow_nor_misread() {
        let max = u64::MAX;
        for (range, want) in [
            (format!("bytes=0-{max}"), RangeSpec::Satisfiable(0..100)),
            (format!("bytes=99-{max}"), RangeSpec::Satisfiable(99..100)),
            (format!("bytes={max}-{max}"), RangeSpec::Unsatisfiable),
            (format!("bytes={max}-"), RangeSpec::Unsatisfiable),
            (format!("bytes=-{max}"), RangeSpec::Satisfiable(0..100)),
            ("bytes=-0".into(), RangeSpec::Unsatisfiable),
            // Past u64, signs, and several ranges: the whole file.
            ("bytes=0-18446744073709551616".into(), RangeSpec::Ignore),
            ("bytes=-99999999999999999999999".into(), RangeSpec::Ignore),
            ("bytes=+1-2".into(), RangeSpec::Ignore),
            ("bytes=1-+2".into(), RangeSpec::Ignore),
            (format!("bytes=0-{max},-{max}"), RangeSpec::Ignore),
            (format!("bytes={max}-0"), RangeSpec::Ignore),
        ] {
            assert_eq!(parse_range(&range, 100), want, "{range}");
        }
        // An empty file: nothing is satisfiable.
        assert_eq!(
            parse_range(&format!("bytes=0-{max}"), 0),
            RangeSpec::Unsatisfiable
        );
        assert_eq!(
            parse_range(&format!("bytes=-{max}"), 0),
            RangeSpec::Unsatisfiable
        );
    }
}
