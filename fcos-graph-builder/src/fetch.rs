//! Fetching one upstream document: over HTTP(S) with conditional requests
//! and a size limit, from a local file, or from bytes compiled in.
//!
//! An upstream may redirect, to `http` and `https` URLs only (never to a
//! local file), [`MAX_REDIRECTS`] times at most; each redirect is logged.

use crate::config::DocumentSource;
use bytes::{Bytes, BytesMut};
use reqwest::header;
use reqwest::StatusCode;
use std::time::Duration;

/// Why a document could not be fetched. [`FetchError::kind`] is a bounded
/// metric label.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No connection could be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The fetch did not complete in time (headers or body).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with an unexpected status.
    #[error("unexpected HTTP status {0}")]
    Status(u16),
    /// The document exceeds the configured limit.
    #[error("document larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The transfer failed midway, or a file cannot be read.
    #[error("read failed: {0}")]
    Read(String),
    /// The server redirected where the graph-builder does not follow: to
    /// another scheme than `http` or `https`, or once too many.
    #[error("redirect refused: {0}")]
    Redirect(String),
}

impl FetchError {
    /// Every [`FetchError::kind`], in the order of the variants.
    pub const KINDS: [&'static str; 6] = [
        "connect",
        "timeout",
        "http_status",
        "too_large",
        "read",
        "redirect",
    ];

    /// A stable machine word for this error.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Connect(_) => "connect",
            FetchError::Timeout(_) => "timeout",
            FetchError::Status(_) => "http_status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Read(_) => "read",
            FetchError::Redirect(_) => "redirect",
        }
    }
}

/// A fetched document and what is needed to ask for it again conditionally.
#[derive(Debug, Clone)]
pub struct Document {
    /// The body.
    pub body: Bytes,
    /// The `ETag` the server sent.
    pub etag: Option<String>,
    /// The `Last-Modified` the server sent.
    pub last_modified: Option<String>,
}

/// The result of a fetch.
#[derive(Debug)]
pub enum Fetched {
    /// A (possibly new) document.
    Document(Document),
    /// The server says the previous document is still current.
    NotModified,
}

/// Most redirects followed for one fetch.
pub const MAX_REDIRECTS: usize = 5;

/// Why a redirect is not followed (the cause of a [`FetchError::Redirect`]).
#[derive(Debug, thiserror::Error)]
enum RefusedRedirect {
    #[error("'{from}' redirects to '{to}': only http and https URLs are followed")]
    Scheme { from: String, to: String },
    #[error("'{from}' redirects to '{to}': more than {MAX_REDIRECTS} redirects")]
    TooMany { from: String, to: String },
}

/// Follows a redirect to an `http` or `https` URL, [`MAX_REDIRECTS`] at
/// most, and logs it.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let from = attempt
            .previous()
            .last()
            .map(|url| url.to_string())
            .unwrap_or_default();
        let to = attempt.url().to_string();
        if !matches!(attempt.url().scheme(), "http" | "https") {
            return attempt.error(RefusedRedirect::Scheme { from, to });
        }
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(RefusedRedirect::TooMany { from, to });
        }
        tracing::info!(%from, %to, status = attempt.status().as_u16(), "upstream redirects");
        attempt.follow()
    })
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Why a redirect that reached the caller was not followed: the client
/// follows the others, and leaves to another scheme than `http` and
/// `https` (a `file:` URL, say) unfollowed.
fn refused_redirect(response: &reqwest::Response) -> String {
    let from = response.url().clone();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok());
    match location.map(|location| (location, from.join(location))) {
        Some((_, Ok(to))) if !matches!(to.scheme(), "http" | "https") => RefusedRedirect::Scheme {
            from: from.to_string(),
            to: to.to_string(),
        }
        .to_string(),
        Some((location, _)) => format!(
            "'{from}' redirects to '{}', which cannot be followed",
            location.chars().take(200).collect::<String>()
        ),
        None => format!("'{from}' redirects without a location"),
    }
}

/// Fetches documents with one shared HTTP client.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_body_bytes: u64,
}

impl Fetcher {
    /// A fetcher whose every fetch (headers and body) is bounded by
    /// `timeout` and `max_body_bytes`.
    pub fn new(timeout: Duration, max_body_bytes: u64) -> reqwest::Result<Self> {
        let client = service_kit::client::builder("fcos-graph-builder")
            .connect_timeout(timeout)
            .redirect(redirect_policy())
            .build()?;
        Ok(Fetcher {
            client,
            timeout,
            max_body_bytes,
        })
    }

    /// Fetches `source`; `previous` makes an HTTP fetch conditional.
    pub async fn fetch(
        &self,
        source: &DocumentSource,
        previous: Option<&Document>,
    ) -> Result<Fetched, FetchError> {
        let fetch = async {
            match source {
                DocumentSource::Static(bytes) => Ok(Fetched::Document(Document {
                    body: Bytes::from_static(bytes),
                    etag: None,
                    last_modified: None,
                })),
                DocumentSource::Url(url) if url.scheme() == "file" => self.fetch_file(url).await,
                DocumentSource::Url(url) => self.fetch_http(url, previous).await,
            }
        };
        tokio::time::timeout(self.timeout, fetch)
            .await
            .unwrap_or(Err(FetchError::Timeout(self.timeout)))
    }

    async fn fetch_file(&self, url: &url::Url) -> Result<Fetched, FetchError> {
        let path = url
            .to_file_path()
            .map_err(|()| FetchError::Read(format!("'{url}' is not a local path")))?;
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|e| FetchError::Read(e.to_string()))?;
        if meta.len() > self.max_body_bytes {
            return Err(FetchError::TooLarge(self.max_body_bytes));
        }
        let body = tokio::fs::read(&path)
            .await
            .map_err(|e| FetchError::Read(e.to_string()))?;
        Ok(Fetched::Document(Document {
            body: Bytes::from(body),
            etag: None,
            last_modified: None,
        }))
    }

    async fn fetch_http(
        &self,
        url: &url::Url,
        previous: Option<&Document>,
    ) -> Result<Fetched, FetchError> {
        let mut request = self.client.get(url.as_str());
        if let Some(previous) = previous {
            if let Some(etag) = &previous.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &previous.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, modified);
            }
        }
        let mut response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && previous.is_some() {
            return Ok(Fetched::NotModified);
        }
        if is_redirect(status) {
            return Err(FetchError::Redirect(refused_redirect(&response)));
        }
        if status != StatusCode::OK {
            return Err(FetchError::Status(status.as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes)
        {
            return Err(FetchError::TooLarge(self.max_body_bytes));
        }
        let header_text = |name: header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let etag = header_text(header::ETAG);
        let last_modified = header_text(header::LAST_MODIFIED);
        // Of its announced length at once (within the limit, checked
        // above): a document is not copied as its buffer doubles.
        let announced = response.content_length().unwrap_or(0);
        let mut body = BytesMut::with_capacity(announced as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if (body.len() + chunk.len()) as u64 > self.max_body_bytes {
                return Err(FetchError::TooLarge(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched::Document(Document {
            body: body.freeze(),
            etag,
            last_modified,
        }))
    }

    fn classify(&self, error: reqwest::Error) -> FetchError {
        if error.is_redirect() {
            FetchError::Redirect(root_cause(&error))
        } else if error.is_timeout() {
            FetchError::Timeout(self.timeout)
        } else if error.is_connect() {
            FetchError::Connect(root_cause(&error))
        } else {
            FetchError::Read(root_cause(&error))
        }
    }
}

/// The innermost cause of an error, which is the one that says what
/// happened (reqwest's outer message repeats the URL).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// `head` then `tail`, as one list of `N` kinds: the error kinds of a
/// caller made of [`FetchError::KINDS`] and its own, written once.
pub const fn kinds<const N: usize>(
    head: &[&'static str],
    tail: &[&'static str],
) -> [&'static str; N] {
    assert!(
        head.len() + tail.len() == N,
        "N must be the length of both lists"
    );
    let mut all = [""; N];
    let mut i = 0;
    while i < head.len() {
        all[i] = head[i];
        i += 1;
    }
    let mut j = 0;
    while j < tail.len() {
        all[i + j] = tail[j];
        j += 1;
    }
    all
}
