//! The one layer between the socket and the HTTP parser: limits on each
//! request head that the framework does not apply.
//!
//! The framework times only the first request head of a connection; a
//! client that sends one request and then trickles the next head byte by
//! byte would keep its connection forever. [`HeadGuard`] holds each head
//! until it is whole, and gives it at most [`crate::server::HEAD_TIMEOUT`]
//! to arrive, on every request of the connection; a new connection gets as
//! long to start its first. A head also has to stay within
//! [`MAX_URI_BYTES`] for its target and [`MAX_HEADER_BYTES`] for its
//! header section, so a connection holds at most one head of bounded size,
//! whatever the client sends.
//!
//! A head over a limit, or too slow, never reaches the parser: the guard
//! hands it a short request carrying [`LIMIT_HEADER`] instead, which the
//! application answers like any other error (a JSON `{kind, value}` body
//! with 414, 431 or 408, counted in the response metrics, logged at debug
//! level) before the connection closes; the rest of what the client sends
//! is read and dropped, up to [`MAX_DISCARD`] bytes, so that it receives
//! the answer.
//!
//! Heads are handed to the parser at most [`PIPELINE_DEPTH`] between two
//! writes of answers, and none while the socket refuses the answers (the
//! client does not read them): a client pipelining requests, or not
//! reading, gets no more of them parsed and answered into memory; a write
//! that goes through lets the next heads in. Meanwhile the socket is still
//! read (up to a head's worth) while answers are not refused, so that a
//! client leaving ends a request held for it.
//!
//! No endpoint of the services takes a request body: a head that
//! announces one (`Content-Length` other than 0, or `Transfer-Encoding`)
//! is refused the same way, with a 413, and its body dropped. Empty lines
//! before a request line are dropped as they come, and count against the
//! head timeout. A request line that cannot be HTTP (a control byte, as
//! in a TLS hello) is handed to the parser at once, which refuses it with
//! a 400 and closes the connection; nothing after it reaches the parser.
//! So every byte the parser reads belongs to a checked head, a stand-in or
//! a line it refuses: the limits hold on every request of a connection.

use bytes::{Buf, BytesMut};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

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
pub const MAX_DISCARD: usize = 1 << 20;
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;
/// Request heads handed to the parser at most between two writes of
/// answers: a client pipelining requests gets them parsed as the answers
/// go out, not all at once.
pub const PIPELINE_DEPTH: u8 = 4;
/// Most bytes a head may take, empty lines before it aside.
const MAX_HEAD_BYTES: usize = MAX_URI_BYTES + LINE_SLACK + MAX_HEADER_BYTES;

/// A limit a request head broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The request target is longer than [`MAX_URI_BYTES`].
    Uri,
    /// The header section is larger than [`MAX_HEADER_BYTES`].
    Headers,
    /// The head did not arrive whole within the head timeout.
    Timeout,
    /// The head announces a request body, which no endpoint takes.
    Body,
}

impl Limit {
    /// The value of [`LIMIT_HEADER`] naming this limit.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Uri => "uri",
            Limit::Headers => "headers",
            Limit::Timeout => "timeout",
            Limit::Body => "body",
        }
    }

    /// The limit a [`LIMIT_HEADER`] value names.
    pub fn from_header(value: &[u8]) -> Option<Limit> {
        match value {
            b"uri" => Some(Limit::Uri),
            b"headers" => Some(Limit::Headers),
            b"timeout" => Some(Limit::Timeout),
            b"body" => Some(Limit::Body),
            _ => None,
        }
    }
}

/// What the bytes at the start of the buffer are (empty lines before the
/// request line already dropped).
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// A complete head of this many bytes; `body` when it announces a body.
    Head { len: usize, body: bool },
    /// The start of a head, within the limits so far.
    Partial,
    /// A head over a limit.
    Over(Limit),
    /// Not an HTTP request line: for the parser to refuse.
    Invalid,
}

/// Examines the head at the start of `buf`.
fn scan(buf: &[u8]) -> Scan {
    let line_end = memchr::memchr(b'\n', buf);
    let line = &buf[..line_end.unwrap_or(buf.len())];
    if line
        .iter()
        .any(|&b| (b < 0x20 && b != b'\r' && b != b'\t') || b == 0x7f)
    {
        return Scan::Invalid;
    }
    let Some(line_len) = line_end else {
        return if buf.len() > MAX_URI_BYTES + LINE_SLACK {
            Scan::Over(Limit::Uri)
        } else {
            Scan::Partial
        };
    };
    let target_len = memchr::memchr(b' ', line).map_or(0, |start| {
        let target = &line[start + 1..];
        memchr::memchr(b' ', target).unwrap_or(target.len())
    });
    if target_len > MAX_URI_BYTES || line_len > MAX_URI_BYTES + LINE_SLACK {
        return Scan::Over(Limit::Uri);
    }
    let headers_start = line_len + 1;
    let mut pos = headers_start;
    let mut body = false;
    loop {
        let Some(len) = memchr::memchr(b'\n', &buf[pos..]) else {
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
    let Some(colon) = memchr::memchr(b':', line) else {
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
    let path = head
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
    request.extend_from_slice(b"\r\nconnection: close\r\n");
    // The origin, when the client sent it, so that a browser may read
    // the answer (CORS).
    if let Some(origin) = origin_line(head) {
        request.extend_from_slice(b"origin: ");
        request.extend_from_slice(origin);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// The value of an `Origin` header line among the header lines of `head`,
/// when it is short and printable.
fn origin_line(head: &[u8]) -> Option<&[u8]> {
    head.split(|&b| b == b'\n').skip(1).find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let value = line
            .get(..7)
            .filter(|name| name.eq_ignore_ascii_case(b"origin:"))
            .map(|_| line[7..].trim_ascii())?;
        (!value.is_empty() && value.len() <= 256 && value.iter().all(|b| (0x21..0x7f).contains(b)))
            .then_some(value)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Heads are checked; `buf[..ready]` has been checked and can be
    /// handed to the parser.
    Checking,
    /// The stand-in request, or a line for the parser to refuse, is
    /// handed out; what the client sends is read and dropped (up to
    /// [`MAX_DISCARD`] bytes). The parser answers and closes the
    /// connection, within the head's deadline when it runs.
    Discarding { dropped: usize },
    /// The client ended the stream within a head: what it sent is handed
    /// to the parser, then the end of the stream.
    Ended,
}

/// A connection whose request heads are checked against the limits and
/// the head timeout.
pub struct HeadGuard<T> {
    inner: T,
    buf: BytesMut,
    /// Bytes at the front of `buf` ready to be handed out.
    ready: usize,
    mode: Mode,
    timeout: Duration,
    /// When the head being read must be whole.
    deadline: Pin<Box<Sleep>>,
    /// Whether a head is being read (the deadline runs).
    timing: bool,
    /// Heads handed out since an answer was last written.
    heads_ahead: u8,
    /// Whether the last write found the socket full: the client is not
    /// reading its answers.
    write_blocked: bool,
    /// Whether a read was refused while waiting for a write, which wakes
    /// the connection again.
    waiting_for_write: bool,
    /// Counts the connection as open while it lives.
    _slot: Option<crate::server::ConnectionSlot>,
}

impl<T> HeadGuard<T> {
    /// Checks the request heads read from `inner`, each within `timeout`
    /// (the first from now).
    pub fn new(inner: T, timeout: Duration) -> Self {
        HeadGuard {
            inner,
            buf: BytesMut::new(),
            ready: 0,
            mode: Mode::Checking,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timing: true,
            heads_ahead: 0,
            write_blocked: false,
            waiting_for_write: false,
            _slot: None,
        }
    }

    /// Holds `slot` as long as the connection lives.
    pub(crate) fn holding(mut self, slot: crate::server::ConnectionSlot) -> Self {
        self._slot = Some(slot);
        self
    }

    /// Bytes held for the head being read.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Starts the deadline of a new head, at its first byte.
    fn start_head(&mut self) {
        self.timing = true;
        let deadline = Instant::now() + self.timeout;
        self.deadline.as_mut().reset(deadline);
    }

    /// Whether the deadline of the head being read has passed.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.timing && self.deadline.as_mut().poll(cx).is_ready()
    }

    /// Replaces the head being read by the stand-in request for `limit`.
    fn refuse(&mut self, limit: Limit) {
        tracing::debug!(limit = limit.as_str(), "request head refused");
        let request = stand_in(&self.buf, limit);
        self.buf.clear();
        self.buf.extend_from_slice(&request);
        self.ready = request.len();
        self.mode = Mode::Discarding { dropped: 0 };
        self.timing = false;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for HeadGuard<T> {
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
                Mode::Ended => {
                    if !this.buf.is_empty() {
                        this.ready = this.buf.len();
                        continue;
                    }
                    return Poll::Ready(Ok(()));
                }
                Mode::Discarding { dropped } => {
                    if this.expired(cx) {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the refused request was not answered within the head timeout",
                        )));
                    }
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
                Mode::Checking => {
                    // No more heads while the client does not read its
                    // answers, or has enough of them pending: what the
                    // connection holds stays bounded (a write wakes it).
                    if this.write_blocked || this.heads_ahead >= PIPELINE_DEPTH {
                        this.waiting_for_write = true;
                        // Heads ahead of a request still being answered (a
                        // long poll): the socket is still watched, so that
                        // a client leaving ends the request; what it sends
                        // meanwhile is kept for later, up to a head's worth.
                        if this.write_blocked || this.buf.len() >= MAX_HEAD_BYTES {
                            return Poll::Pending;
                        }
                        match read_more(&mut this.inner, &mut this.buf, cx) {
                            // The end of the stream goes to the parser,
                            // after the heads before it.
                            Poll::Ready(Ok(0)) if this.buf.is_empty() => {
                                return Poll::Ready(Ok(()))
                            }
                            Poll::Ready(Ok(0)) => return Poll::Pending,
                            Poll::Ready(Ok(_)) => continue,
                            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => return Poll::Pending,
                        }
                    }
                    // Empty lines before a request line are dropped (RFC
                    // 9112, 2.2); they count against the head's deadline,
                    // which runs from the first byte after a request.
                    let empty = this
                        .buf
                        .iter()
                        .position(|b| !matches!(b, b'\r' | b'\n'))
                        .unwrap_or(this.buf.len());
                    this.buf.advance(empty);
                    match scan(&this.buf) {
                        Scan::Head { len, body: true } => {
                            this.buf.truncate(len);
                            this.refuse(Limit::Body);
                        }
                        Scan::Head { len, body: false } => {
                            this.timing = false;
                            this.heads_ahead += 1;
                            this.ready = len;
                        }
                        Scan::Over(limit) => this.refuse(limit),
                        Scan::Invalid => {
                            // For the parser to refuse; nothing after it
                            // reaches the parser.
                            this.ready = this.buf.len();
                            this.mode = Mode::Discarding { dropped: 0 };
                        }
                        Scan::Partial => {
                            if !this.timing && !this.buf.is_empty() {
                                this.start_head();
                            }
                            if this.expired(cx) {
                                this.refuse(Limit::Timeout);
                                continue;
                            }
                            match read_more(&mut this.inner, &mut this.buf, cx) {
                                Poll::Ready(Ok(0)) => {
                                    // End of stream in a head: the parser
                                    // sees what there is.
                                    this.mode = Mode::Ended;
                                    this.timing = false;
                                }
                                Poll::Ready(Ok(_)) => {
                                    if !this.timing {
                                        this.start_head();
                                    }
                                }
                                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                                Poll::Pending => return Poll::Pending,
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Reads what the socket has into `buf`: `Ok(0)` at end of stream.
fn read_more<T: AsyncRead + Unpin>(
    inner: &mut T,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    buf.reserve(READ_CHUNK);
    tokio_util::io::poll_read_buf(Pin::new(inner), cx, buf)
}

impl<T> HeadGuard<T> {
    /// Notes how a write went: a full socket stops the reading of heads;
    /// a write that goes through starts it again.
    fn wrote<R>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match &written {
            Poll::Pending => self.write_blocked = true,
            Poll::Ready(Ok(_)) => {
                self.write_blocked = false;
                self.heads_ahead = 0;
                if std::mem::take(&mut self.waiting_for_write) {
                    cx.waker().wake_by_ref();
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        written
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for HeadGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
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
    use proptest::prelude::*;

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
        // Bare LF line ends.
        let lf = b"GET / HTTP/1.1\nhost: x\n\n";
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
        let with_origin = stand_in(
            b"GET /v1/graph?a HTTP/1.1\r\nHost: x\r\nORIGIN:  https://a.example\r\nx: yyyy",
            Limit::Headers,
        );
        assert!(with_origin.ends_with(b"connection: close\r\norigin: https://a.example\r\n\r\n"));
        let odd = stand_in(b"GET /a\"b HTTP/1.1\r\n", Limit::Headers);
        assert!(odd.starts_with(b"GET / HTTP/1.1\r\n"));
        assert!(matches!(scan(&odd), Scan::Head { body: false, .. }));
    }

    #[tokio::test]
    async fn pipelined_heads_wait_for_answers() {
        use futures_util::FutureExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let head = b"GET /v1/graph HTTP/1.1\r\nhost: x\r\n\r\n";
        let sent = head.repeat(10);
        let mut guard = HeadGuard::new(Chunks(vec![sent].into()), Duration::from_secs(60));
        fn read_heads(guard: &mut HeadGuard<Chunks>, head: &[u8]) -> usize {
            let mut out = Vec::new();
            let mut buf = vec![0; 4096];
            while let Some(Ok(n @ 1..)) = guard.read(&mut buf).now_or_never() {
                out.extend_from_slice(&buf[..n]);
            }
            out.len() / head.len()
        }
        // Without an answer, the parser gets at most PIPELINE_DEPTH heads.
        let depth = usize::from(PIPELINE_DEPTH);
        assert_eq!(read_heads(&mut guard, head), depth);
        assert_eq!(read_heads(&mut guard, head), 0);
        // An answer written lets the next ones through.
        guard.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(read_heads(&mut guard, head), depth);

        // A client that leaves while its requests are held (nothing to
        // write yet) is seen: the end of the stream reaches the parser.
        let mut guard = HeadGuard::new(
            Chunks(vec![head.repeat(usize::from(PIPELINE_DEPTH))].into()),
            Duration::from_secs(60),
        );
        assert_eq!(read_heads(&mut guard, head), depth);
        let mut buf = vec![0; 64];
        assert_eq!(guard.read(&mut buf).now_or_never().unwrap().unwrap(), 0);
    }

    #[test]
    fn a_request_line_that_cannot_be_http_goes_to_the_parser_at_once() {
        // The start of a TLS hello.
        assert_eq!(scan(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), Scan::Invalid);
        assert_eq!(scan(b"GET /\x00 HTTP/1.1\r\n"), Scan::Invalid);
        assert_eq!(scan(b"GET /caf\xc3\xa9"), Scan::Partial);
    }

    /// A connection that delivers `chunks` one read at a time, then ends.
    struct Chunks(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(out.remaining());
                out.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Answers go nowhere, and always go through.
    impl AsyncWrite for Chunks {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// What the parser reads from a guard over `chunks`, answering
    /// whenever the guard waits for an answer, and the most bytes the
    /// guard held at once; stops where the guard waits otherwise (after a
    /// stand-in, or for its deadline).
    fn through_guard(chunks: Vec<Vec<u8>>, timeout: Duration) -> (Vec<u8>, usize) {
        use futures_util::FutureExt;
        use tokio::io::AsyncReadExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::io::AsyncWriteExt;
            let mut guard = HeadGuard::new(Chunks(chunks.into()), timeout);
            let (mut out, mut held) = (Vec::new(), 0);
            let mut buf = vec![0; 4096];
            loop {
                let read = guard.read(&mut buf).now_or_never();
                held = held.max(guard.buffered());
                match read {
                    None if guard.waiting_for_write => {
                        guard.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
                    }
                    Some(Ok(0)) | Some(Err(_)) | None => break,
                    Some(Ok(n)) => out.extend_from_slice(&buf[..n]),
                }
            }
            (out, held)
        })
    }

    /// Most bytes a guard holds for one head.
    const MAX_HELD: usize = MAX_HEAD_BYTES + 2 * READ_CHUNK;

    fn request() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        (
            "[a-z0-9/?=&%._-]{0,300}",
            proptest::collection::vec(("[a-zA-Z-]{1,20}", "[ -~]{0,100}"), 0..12),
            any::<bool>(),
        )
            .prop_map(|(target, headers, lf)| {
                let end = if lf { "\n" } else { "\r\n" };
                let mut head = format!("GET /{target} HTTP/1.1{end}");
                // Names prefixed, so that none announces a body (which
                // the guard refuses) whatever the generator draws.
                for (name, value) in headers {
                    head.push_str(&format!("x-{name}: {value}{end}"));
                }
                head.push_str(end);
                head.into_bytes()
            })
    }

    fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.extend([0, bytes.len()]);
        points.sort_unstable();
        points.dedup();
        points
            .windows(2)
            .map(|w| bytes[w[0]..w[1]].to_vec())
            .collect()
    }

    proptest! {
        /// Heads within the limits reach the parser exactly as sent,
        /// however the connection splits them.
        #[test]
        fn heads_within_the_limits_pass_unchanged(
            requests in proptest::collection::vec(request(), 1..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let sent: Vec<u8> = requests.concat();
            let (out, held) = through_guard(split(&sent, &cuts), Duration::from_secs(60));
            prop_assert_eq!(out, sent);
            prop_assert!(held <= MAX_HELD, "{}", held);
        }

        /// Whatever a client sends, the guard holds a bounded number of
        /// bytes, never panics, and hands the parser either what was sent
        /// (less empty lines) or, at most once, a stand-in request that
        /// closes the connection.
        #[test]
        fn any_bytes_are_held_bounded(
            parts in proptest::collection::vec(
                prop_oneof![
                    request(),
                    proptest::collection::vec(any::<u8>(), 0..64),
                    (1usize..40_000).prop_map(|n| b"\r\n".repeat(n)),
                    (1usize..40_000).prop_map(|n| vec![b'a'; n]),
                    (1usize..2_000).prop_map(|n| b"x: y\r\n".repeat(n)),
                ],
                1..8,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let sent: Vec<u8> = parts.concat();
            let (out, held) = through_guard(split(&sent, &cuts), Duration::from_secs(60));
            prop_assert!(held <= MAX_HELD, "{}", held);
            let stand_ins = out
                .windows(LIMIT_HEADER.len())
                .filter(|w| *w == LIMIT_HEADER.as_bytes())
                .count();
            prop_assert!(stand_ins <= 1);
            if stand_ins == 0 {
                let kept: Vec<u8> = sent.iter().copied().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
                let passed: Vec<u8> = out.iter().copied().filter(|b| !matches!(b, b'\r' | b'\n')).collect();
                prop_assert!(kept.starts_with(&passed));
            }
        }
    }

    #[test]
    fn a_flood_of_empty_lines_is_not_kept() {
        let flood = vec![b"\r\n".repeat(8 * 1024); 64];
        let (out, held) = through_guard(flood, Duration::from_secs(60));
        assert!(held <= READ_CHUNK * 2, "{held}");
        // Dropped as they come: the parser sees only the end of the stream.
        assert!(out.is_empty(), "{} bytes", out.len());
    }

    #[test]
    fn empty_lines_before_heads_do_not_lift_the_limits() {
        let head = b"GET /v1/graph HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut sent = b"\r\n".repeat(1000);
        sent.extend(head.repeat(10));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            use futures_util::FutureExt;
            use tokio::io::AsyncReadExt;
            let mut guard = HeadGuard::new(Chunks(vec![sent].into()), Duration::from_secs(60));
            let mut out = Vec::new();
            let mut buf = vec![0; 4096];
            while let Some(Ok(n @ 1..)) = guard.read(&mut buf).now_or_never() {
                out.extend_from_slice(&buf[..n]);
            }
            // Still at most PIPELINE_DEPTH heads before an answer.
            assert_eq!(out, head.repeat(usize::from(PIPELINE_DEPTH)));
        });
        // A head over a limit after them is still replaced.
        let mut long = b"\r\n".repeat(1000);
        long.extend(format!("GET /x?{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES)).bytes());
        let (out, _) = through_guard(vec![long], Duration::from_secs(60));
        assert_eq!(out, stand_in(b"GET /x?", Limit::Uri));
    }

    #[test]
    fn a_head_that_announces_a_body_is_replaced_and_nothing_after_it_passes() {
        let head = "GET /v1/graph HTTP/1.1\r\nhost: x\r\n\r\n";
        for announce in [
            "content-length: 1",
            "Transfer-Encoding: chunked",
            "Content-Length: x",
        ] {
            let request = format!("GET /v1/graph?a=b HTTP/1.1\r\n{announce}\r\n\r\nX");
            let sent = [request.as_bytes(), head.repeat(100).as_bytes()].concat();
            let (out, held) = through_guard(vec![sent], Duration::from_secs(60));
            assert_eq!(out, stand_in(b"GET /v1/graph?", Limit::Body), "{announce}");
            assert!(held <= MAX_HELD, "{held}");
        }
        // Content-Length: 0 is no body.
        let empty = format!("GET /a HTTP/1.1\r\ncontent-length: 0\r\n\r\n{head}");
        let (out, _) = through_guard(vec![empty.clone().into_bytes()], Duration::from_secs(60));
        assert_eq!(out, empty.into_bytes());
    }

    #[test]
    fn nothing_after_a_line_for_the_parser_to_refuse_reaches_it() {
        let head = b"GET /v1/graph HTTP/1.1\r\nhost: x\r\n\r\n";
        let mut sent = b"GET /\x00 HTTP/1.1\r\n\r\n".to_vec();
        sent.extend(head.repeat(100));
        let (out, held) = through_guard(vec![sent.clone()], Duration::from_secs(60));
        assert!(held <= MAX_HELD, "{held}");
        // What was read with the bad line, and nothing read after it.
        assert!(out.starts_with(b"GET /\x00 HTTP/1.1\r\n"));
        assert!(sent.starts_with(&out));
    }

    #[test]
    fn a_head_over_a_limit_is_replaced() {
        let long = format!(
            "GET /v1/graph?x={} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_URI_BYTES)
        );
        let (out, _) = through_guard(vec![long.into_bytes()], Duration::from_secs(60));
        assert_eq!(out, stand_in(b"GET /v1/graph?", Limit::Uri));
    }

    #[test]
    fn every_head_of_a_connection_must_arrive_in_time() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut client, server) = tokio::io::duplex(64 * 1024);
            let mut guard = HeadGuard::new(server, Duration::from_millis(200));
            let mut buf = vec![0; 4096];
            // A first request in time passes.
            client.write_all(b"GET /a HTTP/1.1\r\n\r\n").await.unwrap();
            let n = guard.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"GET /a HTTP/1.1\r\n\r\n");
            // Idle between requests: no deadline runs (the keep-alive
            // timeout is the parser's).
            tokio::time::sleep(Duration::from_millis(300)).await;
            // The next head trickles in, a byte every 50 ms.
            let trickle = tokio::spawn(async move {
                for byte in b"GET /v1/graph?stream=stable HTTP/1.1\r\n".iter() {
                    if client.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                client
            });
            let started = Instant::now();
            let n = guard.read(&mut buf).await.unwrap();
            assert!(started.elapsed() < Duration::from_millis(400));
            let request = String::from_utf8_lossy(&buf[..n]);
            assert!(
                request.contains("x-fcos-request-limit: timeout\r\n"),
                "{request}"
            );
            trickle.abort();
        });
    }
}
