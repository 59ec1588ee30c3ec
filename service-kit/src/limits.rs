//! Limits on what a client sends, checked on the bytes of each request head
//! before the HTTP parser sees them: a request target over
//! [`MAX_URI_BYTES`] or a header section over [`MAX_HEADER_BYTES`] never
//! reaches the parser (which would answer a bare 400 or 431 outside the
//! application, uncounted, and log it as an error). Instead the head is
//! replaced by a short request carrying [`LIMIT_HEADER`], which the
//! application answers like any other error: a JSON `{kind, value}` body,
//! counted in the response metrics, logged at debug level. The connection
//! closes after that answer; the rest of the oversized head is read and
//! dropped so that the client receives it.
//!
//! Only heads are checked: once a request announces a body (which no
//! endpoint of the services takes), the rest of the connection is passed
//! through unchecked, and the parser's own limits apply.

use actix_web::rt::net::TcpStream;
use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request target (path and query) accepted, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header section (the header lines after the request line)
/// accepted, in bytes.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Header of the request that stands in for a head over a limit; its value
/// names the limit ([`Limit::as_str`]).
pub const LIMIT_HEADER: &str = "x-fcos-request-limit";
/// Room for the method and version around the request target.
const LINE_SLACK: usize = 64;
/// Most bytes of an oversized head read and dropped before the connection
/// stops reading altogether.
const MAX_DISCARD: usize = 1 << 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A limit a request head broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The request target is longer than [`MAX_URI_BYTES`].
    Uri,
    /// The header section is larger than [`MAX_HEADER_BYTES`].
    Headers,
}

impl Limit {
    /// The value of [`LIMIT_HEADER`] naming this limit.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Uri => "uri",
            Limit::Headers => "headers",
        }
    }

    /// The limit a [`LIMIT_HEADER`] value names.
    pub fn from_header(value: &[u8]) -> Option<Limit> {
        match value {
            b"uri" => Some(Limit::Uri),
            b"headers" => Some(Limit::Headers),
            _ => None,
        }
    }
}

/// What the bytes at the start of the buffer are.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A complete head of this many bytes; `body` when it announces a body.
    Head { len: usize, body: bool },
    /// The start of a head, within the limits so far.
    Partial,
    /// A head over a limit.
    Over(Limit),
}

/// Examines the head at the start of `buf`.
fn scan(buf: &[u8]) -> Scan {
    // Empty lines before a request line are allowed (RFC 9112, 2.2).
    let start = buf
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(buf.len());
    let Some(line_len) = buf[start..].iter().position(|&b| b == b'\n') else {
        return if buf.len() - start > MAX_URI_BYTES + LINE_SLACK {
            Scan::Over(Limit::Uri)
        } else {
            Scan::Partial
        };
    };
    let target_len = buf[start..start + line_len]
        .split(|&b| b == b' ')
        .nth(1)
        .map_or(0, <[u8]>::len);
    if target_len > MAX_URI_BYTES {
        return Scan::Over(Limit::Uri);
    }
    let headers_start = start + line_len + 1;
    let mut pos = headers_start;
    let mut body = false;
    loop {
        let Some(len) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() - headers_start > MAX_HEADER_BYTES {
                Scan::Over(Limit::Headers)
            } else {
                Scan::Partial
            };
        };
        let line = buf[pos..pos + len]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[pos..pos + len]);
        if pos + len + 1 - headers_start > MAX_HEADER_BYTES {
            return Scan::Over(Limit::Headers);
        }
        if line.is_empty() {
            return Scan::Head {
                len: pos + len + 1,
                body,
            };
        }
        body |= announces_body(line);
        pos += len + 1;
    }
}

/// Whether a header line announces a request body.
fn announces_body(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
    name.eq_ignore_ascii_case(b"transfer-encoding")
        || (name.eq_ignore_ascii_case(b"content-length") && value != b"0")
}

/// The request that stands in for a head over `limit`: the same path when
/// it can be read from the start of the head (so that the response is
/// counted under the right handler), else `/`.
fn stand_in(head: &[u8], limit: Limit) -> Vec<u8> {
    let start = head
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(head.len());
    let path = head[start..]
        .split(|&b| b == b' ')
        .nth(1)
        .map(|target| {
            let end = target
                .iter()
                .position(|&b| matches!(b, b'?' | b'\r' | b'\n'))
                .unwrap_or(target.len());
            &target[..end]
        })
        .filter(|path| {
            path.len() <= 256
                && path.first() == Some(&b'/')
                && path
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._-~%".contains(b))
        })
        .unwrap_or(b"/");
    let mut request = Vec::with_capacity(path.len() + 96);
    request.extend_from_slice(b"GET ");
    request.extend_from_slice(path);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: localhost\r\n");
    request.extend_from_slice(LIMIT_HEADER.as_bytes());
    request.extend_from_slice(b": ");
    request.extend_from_slice(limit.as_str().as_bytes());
    request.extend_from_slice(b"\r\nconnection: close\r\n\r\n");
    request
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Heads are checked; `buf[..ready]` has been checked and can be
    /// handed to the parser.
    Checking,
    /// The stand-in request is handed out; what the client sends is read
    /// and dropped (up to [`MAX_DISCARD`] bytes).
    Discarding { dropped: usize },
    /// Everything is handed out unchecked.
    Passing,
}

/// A TCP connection whose request heads are checked against the limits.
pub struct LimitedStream {
    inner: TcpStream,
    buf: BytesMut,
    /// Bytes at the front of `buf` ready to be handed out.
    ready: usize,
    mode: Mode,
}

impl LimitedStream {
    /// Checks the request heads read from `inner`.
    pub fn new(inner: TcpStream) -> Self {
        LimitedStream {
            inner,
            buf: BytesMut::new(),
            ready: 0,
            mode: Mode::Checking,
        }
    }

    /// The connection.
    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.ready > 0 {
                let n = this.ready.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.ready -= n;
                return Poll::Ready(Ok(()));
            }
            match this.mode {
                Mode::Passing => {
                    if !this.buf.is_empty() {
                        this.ready = this.buf.len();
                        continue;
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, out);
                }
                Mode::Discarding { dropped } => {
                    if dropped >= MAX_DISCARD {
                        return Poll::Pending;
                    }
                    this.buf.clear();
                    match read_more(&mut this.inner, &mut this.buf, cx) {
                        // At the end of the stream, the parser is left to
                        // answer the stand-in request and close.
                        Poll::Ready(Ok(0)) => return Poll::Pending,
                        Poll::Ready(Ok(n)) => {
                            this.mode = Mode::Discarding {
                                dropped: dropped + n,
                            };
                            this.buf.clear();
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Mode::Checking => match scan(&this.buf) {
                    Scan::Head { len, body } => {
                        if body {
                            this.mode = Mode::Passing;
                        }
                        this.ready = len;
                    }
                    Scan::Over(limit) => {
                        tracing::debug!(
                            limit = limit.as_str(),
                            peer = ?this.inner.peer_addr().ok(),
                            "request head over the limit"
                        );
                        let request = stand_in(&this.buf, limit);
                        this.buf.clear();
                        this.buf.extend_from_slice(&request);
                        this.ready = request.len();
                        this.mode = Mode::Discarding { dropped: 0 };
                    }
                    Scan::Partial => match read_more(&mut this.inner, &mut this.buf, cx) {
                        Poll::Ready(Ok(0)) => {
                            // End of stream in a head: the parser sees what
                            // there is.
                            this.mode = Mode::Passing;
                            if this.buf.is_empty() {
                                return Poll::Ready(Ok(()));
                            }
                        }
                        Poll::Ready(Ok(_)) => {}
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    },
                },
            }
        }
    }
}

/// Reads what the socket has into `buf`: `Ok(0)` at end of stream.
fn read_more(
    inner: &mut TcpStream,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(Pin::new(inner), cx, buf)
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_heads_pass() {
        let head =
            b"GET /v1/graph?stream=stable HTTP/1.1\r\nhost: x\r\naccept: application/json\r\n\r\n";
        assert_eq!(
            scan(head),
            Scan::Head {
                len: head.len(),
                body: false
            }
        );
        let mut two = head.to_vec();
        two.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            scan(&two),
            Scan::Head {
                len: head.len(),
                body: false
            }
        );
        // Bare LF line ends, and empty lines before the request line.
        let lf = b"\r\nGET / HTTP/1.1\nhost: x\n\n";
        assert_eq!(
            scan(lf),
            Scan::Head {
                len: lf.len(),
                body: false
            }
        );
        assert_eq!(scan(b"GET / HTTP/1.1\r\nhost"), Scan::Partial);
        assert_eq!(scan(b""), Scan::Partial);
    }

    #[test]
    fn bodies_are_noticed() {
        for header in [
            "Content-Length: 12",
            "transfer-encoding: chunked",
            "CONTENT-LENGTH:1",
        ] {
            let head = format!("POST / HTTP/1.1\r\n{header}\r\n\r\n");
            assert!(
                matches!(scan(head.as_bytes()), Scan::Head { body: true, .. }),
                "{header}"
            );
        }
        let head = b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n";
        assert!(matches!(scan(head), Scan::Head { body: false, .. }));
    }

    #[test]
    fn limits_apply_to_partial_and_complete_heads() {
        let long_target = format!(
            "GET /v1/graph?x={} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_URI_BYTES)
        );
        assert_eq!(scan(long_target.as_bytes()), Scan::Over(Limit::Uri));
        let at_limit = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES - 1));
        assert!(matches!(scan(at_limit.as_bytes()), Scan::Head { .. }));
        let partial = format!("GET /{}", "a".repeat(MAX_URI_BYTES + LINE_SLACK));
        assert_eq!(scan(partial.as_bytes()), Scan::Over(Limit::Uri));

        let big_header = format!(
            "GET / HTTP/1.1\r\nx: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES)
        );
        assert_eq!(scan(big_header.as_bytes()), Scan::Over(Limit::Headers));
        let partial = format!("GET / HTTP/1.1\r\nx: {}", "a".repeat(MAX_HEADER_BYTES));
        assert_eq!(scan(partial.as_bytes()), Scan::Over(Limit::Headers));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "x-a: 1234567890\r\n".repeat(MAX_HEADER_BYTES / 17 + 1)
        );
        assert_eq!(scan(many.as_bytes()), Scan::Over(Limit::Headers));
        let within = format!(
            "GET / HTTP/1.1\r\nx: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES - 8)
        );
        assert!(matches!(scan(within.as_bytes()), Scan::Head { .. }));
    }

    #[test]
    fn the_stand_in_keeps_a_readable_path() {
        let request = stand_in(b"GET /v1/graph?stream=aaaa", Limit::Uri);
        assert_eq!(
            request,
            b"GET /v1/graph HTTP/1.1\r\nhost: localhost\r\nx-fcos-request-limit: uri\r\nconnection: close\r\n\r\n"
        );
        let odd = stand_in(b"GET /a\"b HTTP/1.1\r\n", Limit::Headers);
        assert!(odd.starts_with(b"GET / HTTP/1.1\r\n"));
        assert!(matches!(scan(&odd), Scan::Head { body: false, .. }));
    }
}
