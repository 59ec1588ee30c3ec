//! The requests the registry source makes, over the OCI distribution API:
//! the tag list, manifests by tag or digest, config blobs by digest. Every
//! request is counted against the refresh's budget; the token flow
//! (anonymous or with credentials) and HTTP basic authentication are
//! answered as the registry asks; a `429` ends the refresh with the wait
//! the registry gave in `Retry-After`; what is read is bounded and checked
//! against its digest.

use crate::config::{Credentials, RegistrySettings};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256};
use std::sync::Mutex;
use std::time::Duration;

/// Largest manifest or config accepted (the distribution registry's own
/// limit for manifests).
pub const MAX_DOCUMENT_BYTES: u64 = 4 * 1024 * 1024;

/// The manifest media types asked for: image indexes and manifests, OCI
/// and Docker.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Tags asked for per page of the tag list.
const TAGS_PAGE: usize = 1000;

/// Most tags a repository may list: a longer list fails the refresh
/// (`invalid_tag_list`), so that what a registry lists is bounded, as each
/// page is (a tag is at most [`MAX_TAG_BYTES`] long, as the distribution
/// spec says). Twenty years of nightly builds are 7,300 tags.
pub const MAX_TAGS: usize = 100_000;

/// Longest tag: the distribution spec's `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const MAX_TAG_BYTES: usize = 128;

/// Why a request to the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The request.
        url: String,
        /// What the HTTP client said.
        message: String,
    },
    /// The registry took longer than the timeout.
    #[error("{url} timed out")]
    Timeout {
        /// The request.
        url: String,
    },
    /// The answer could not be read.
    #[error("reading {url} failed: {message}")]
    Read {
        /// The request.
        url: String,
        /// What the HTTP client said.
        message: String,
    },
    /// The registry refused the credentials, or asks for credentials that
    /// are not configured.
    #[error("{url}: authentication refused ({status}){hint}")]
    Auth {
        /// The request.
        url: String,
        /// The status answered.
        status: u16,
        /// What to check.
        hint: &'static str,
    },
    /// `429 Too Many Requests`.
    #[error("{url}: rate limited (429), waiting {wait:?}")]
    RateLimited {
        /// The request.
        url: String,
        /// How long the registry asked to wait (`Retry-After`), or the
        /// refresh period when it did not say.
        wait: Option<Duration>,
    },
    /// `404`.
    #[error("{url}: not found (404)")]
    NotFound {
        /// The request.
        url: String,
    },
    /// Any other unexpected status.
    #[error("{url}: unexpected status {status}")]
    Status {
        /// The request.
        url: String,
        /// The status.
        status: u16,
    },
    /// A manifest or config that is not what it claims or what is
    /// expected.
    #[error("{url}: {message}")]
    Invalid {
        /// Where from.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// A tag list that cannot be used: not a tag list, a page over
    /// [`MAX_DOCUMENT_BYTES`], a tag that is no tag, more than
    /// [`MAX_TAGS`] tags, or pages that do not end (a `next` page already
    /// read, or a page without tags that has a `next`).
    #[error("{url}: {message}")]
    TagList {
        /// The page.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The refresh used `[registry] max_requests` requests.
    #[error(
        "the refresh reached registry.max_requests ({0} requests); it goes on at the next refresh"
    )]
    RequestCap(usize),
}

impl RegistryError {
    /// A stable machine word for this error, used as a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::Connect { .. } => "connect",
            RegistryError::Timeout { .. } => "timeout",
            RegistryError::Read { .. } => "read",
            RegistryError::Auth { .. } => "auth",
            RegistryError::RateLimited { .. } => "rate_limited",
            RegistryError::NotFound { .. } => "not_found",
            RegistryError::Status { .. } => "http_status",
            RegistryError::Invalid { .. } => "invalid_manifest",
            RegistryError::TagList { .. } => "invalid_tag_list",
            RegistryError::RequestCap(_) => "request_cap",
        }
    }
}

/// The requests one refresh may still make.
#[derive(Debug)]
pub struct Budget {
    /// Requests made so far.
    pub used: usize,
    /// Most requests allowed.
    pub max: usize,
}

impl Budget {
    /// A budget of `max` requests, none used.
    pub fn new(max: usize) -> Self {
        Budget { used: 0, max }
    }

    fn spend(&mut self) -> Result<(), RegistryError> {
        if self.used >= self.max {
            return Err(RegistryError::RequestCap(self.max));
        }
        self.used += 1;
        Ok(())
    }
}

/// The tag list, or that it did not change.
#[derive(Debug)]
pub enum Tags {
    /// The tags, and the `ETag` of the list's first page if it had one.
    List(Vec<String>, Option<String>),
    /// `304 Not Modified` to the `ETag` given.
    NotModified,
}

/// A manifest or blob read, checked against its digest.
#[derive(Debug)]
pub struct Fetched {
    /// `sha256:<hex>` of the body.
    pub digest: String,
    /// The body.
    pub body: Vec<u8>,
}

/// The HTTP side of the registry source: one client, the registry's
/// token kept between refreshes.
pub struct RegistryClient {
    http: reqwest::Client,
    /// `http(s)://registry/v2/name/`.
    base: String,
    credentials: Option<Credentials>,
    /// The `Authorization` value in use, once the registry asked for one.
    authorization: Mutex<Option<HeaderValue>>,
}

impl std::fmt::Debug for RegistryClient {
    /// Credentials and tokens are not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("user", &self.credentials.as_ref().map(|c| c.user.as_str()))
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client for the configured repository.
    pub fn new(settings: &RegistrySettings, timeout: Duration) -> reqwest::Result<Self> {
        let scheme = if settings.plain_http { "http" } else { "https" };
        Ok(RegistryClient {
            http: service_kit::client::builder("fcos-graph-builder")
                .timeout(timeout)
                .build()?,
            base: format!("{scheme}://{}/v2/{}/", settings.registry, settings.name),
            credentials: settings.credentials.clone(),
            authorization: Mutex::new(None),
        })
    }

    /// Every tag of the repository, following the list's pages; `304`
    /// when `etag` (of an earlier first page) still matches. The list is
    /// bounded: at most [`MAX_TAGS`] tags of at most [`MAX_TAG_BYTES`],
    /// no page read twice, no page without tags but with a next one.
    pub async fn tags(
        &self,
        budget: &mut Budget,
        etag: Option<&str>,
    ) -> Result<Tags, RegistryError> {
        // Tags borrowed from the page (a tag needs no escapes), copied
        // once counted and checked.
        #[derive(serde::Deserialize)]
        struct Page<'a> {
            #[serde(default, borrow)]
            tags: Option<Vec<&'a str>>,
        }
        let mut url = format!("{}tags/list?n={TAGS_PAGE}", self.base);
        let mut tags = Vec::new();
        let mut first_etag = None;
        let mut first = true;
        // The pages read, by the digest of their URL (a URL may be long).
        let mut read = std::collections::HashSet::new();
        loop {
            let refused = |url: &str, message: String| RegistryError::TagList {
                url: url.to_string(),
                message,
            };
            let mut headers = HeaderMap::new();
            if let Some(etag) = etag.filter(|_| first) {
                if let Ok(value) = HeaderValue::from_str(etag) {
                    headers.insert(header::IF_NONE_MATCH, value);
                }
            }
            read.insert(Sha256::digest(url.as_bytes()));
            let response = self.send(budget, Method::GET, &url, headers).await?;
            if first && response.status() == StatusCode::NOT_MODIFIED {
                return Ok(Tags::NotModified);
            }
            if first {
                first_etag = response
                    .headers()
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
            }
            let next = next_page(&url, response.headers());
            let body = read_bounded(response, &url)
                .await
                .map_err(|error| match error {
                    RegistryError::Invalid { url, message } => {
                        RegistryError::TagList { url, message }
                    }
                    other => other,
                })?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| refused(&url, format!("not a tag list: {e}")))?;
            let page = page.tags.unwrap_or_default();
            if let Some(tag) = page.iter().find(|tag| !is_tag(tag)) {
                let shown: String = tag.chars().take(MAX_TAG_BYTES).collect();
                return Err(refused(&url, format!("{shown:?} is not a tag")));
            }
            if tags.len() + page.len() > MAX_TAGS {
                return Err(refused(
                    &url,
                    format!("the repository lists more than {MAX_TAGS} tags"),
                ));
            }
            let empty = page.is_empty();
            tags.extend(page.into_iter().map(String::from));
            first = false;
            match next {
                Some(next) if read.contains(&Sha256::digest(next.as_bytes())) => {
                    return Err(refused(
                        &url,
                        format!("its next page {next} was read already: the pages do not end"),
                    ));
                }
                Some(next) if empty => {
                    return Err(refused(
                        &url,
                        format!(
                            "a page without tags has a next page ({next}): the pages do not end"
                        ),
                    ));
                }
                Some(next) => url = next,
                None => return Ok(Tags::List(tags, first_etag)),
            }
        }
    }

    /// The digest a tag points at now (`HEAD`, one request).
    pub async fn head_manifest(
        &self,
        budget: &mut Budget,
        tag: &str,
    ) -> Result<String, RegistryError> {
        let url = format!("{}manifests/{tag}", self.base);
        let response = self
            .send(budget, Method::HEAD, &url, manifest_accept())
            .await?;
        response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("sha256:"))
            .map(String::from)
            .ok_or_else(|| RegistryError::Invalid {
                url,
                message: "no sha256 Docker-Content-Digest in the answer to HEAD".to_string(),
            })
    }

    /// A manifest by tag or digest, its digest checked against the
    /// reference (a digest) or the registry's `Docker-Content-Digest`.
    pub async fn manifest(
        &self,
        budget: &mut Budget,
        reference: &str,
    ) -> Result<Fetched, RegistryError> {
        let url = format!("{}manifests/{reference}", self.base);
        let response = self
            .send(budget, Method::GET, &url, manifest_accept())
            .await?;
        let claimed = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = read_bounded(response, &url).await?;
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            claimed.filter(|c| c.starts_with("sha256:"))
        };
        checked(url, body, expected)
    }

    /// A blob (an image config) by digest, checked against it.
    pub async fn blob(&self, budget: &mut Budget, digest: &str) -> Result<Fetched, RegistryError> {
        let url = format!("{}blobs/{digest}", self.base);
        let response = self
            .send(budget, Method::GET, &url, HeaderMap::new())
            .await?;
        let body = read_bounded(response, &url).await?;
        checked(url, body, Some(digest.to_string()))
    }

    /// Sends one request (and, when the registry asks for authentication,
    /// gets a token and sends it again), each counted against `budget`.
    /// Answers other than 2xx and 304 are errors.
    async fn send(
        &self,
        budget: &mut Budget,
        method: Method,
        url: &str,
        headers: HeaderMap,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut retried = false;
        loop {
            budget.spend()?;
            let mut request = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(value) = self.authorization() {
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| transport(url, e))?;
            let status = response.status();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                return Ok(response);
            }
            match status {
                StatusCode::UNAUTHORIZED if !retried => {
                    retried = true;
                    let challenge = response
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let value = self.answer_challenge(budget, url, &challenge).await?;
                    *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(RegistryError::Auth {
                        url: url.to_string(),
                        status: status.as_u16(),
                        hint: if self.credentials.is_some() {
                            ": check the credentials of registry.auth_file"
                        } else {
                            ": the registry asks for credentials (registry.auth_file)"
                        },
                    });
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    return Err(RegistryError::RateLimited {
                        url: url.to_string(),
                        wait: retry_after(response.headers()),
                    })
                }
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        url: url.to_string(),
                    })
                }
                other => {
                    return Err(RegistryError::Status {
                        url: url.to_string(),
                        status: other.as_u16(),
                    })
                }
            }
        }
    }

    fn authorization(&self) -> Option<HeaderValue> {
        self.authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The `Authorization` that answers a `WWW-Authenticate` challenge:
    /// basic with the configured credentials, or a bearer token from the
    /// registry's token service (anonymous without credentials).
    async fn answer_challenge(
        &self,
        budget: &mut Budget,
        url: &str,
        challenge: &str,
    ) -> Result<HeaderValue, RegistryError> {
        let refused = |hint| RegistryError::Auth {
            url: url.to_string(),
            status: 401,
            hint,
        };
        let challenges = http_auth::parse_challenges(challenge)
            .map_err(|_| refused(": the registry's WWW-Authenticate cannot be read"))?;
        if let Some(bearer) = challenges
            .iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
        {
            let param = |name: &str| {
                bearer
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            let realm =
                param("realm").ok_or_else(|| refused(": a bearer challenge without realm"))?;
            let mut token_url = url::Url::parse(&realm)
                .map_err(|_| refused(": the token service's realm is not a URL"))?;
            {
                let mut query = token_url.query_pairs_mut();
                if let Some(service) = param("service") {
                    query.append_pair("service", &service);
                }
                if let Some(scope) = param("scope") {
                    query.append_pair("scope", &scope);
                }
            }
            budget.spend()?;
            let mut request = self.http.get(token_url.as_str());
            if let Some(credentials) = &self.credentials {
                request = request.basic_auth(&credentials.user, Some(&credentials.password));
            }
            let response = request
                .send()
                .await
                .map_err(|e| transport(token_url.as_str(), e))?;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                return Err(RegistryError::RateLimited {
                    url: token_url.to_string(),
                    wait: retry_after(response.headers()),
                });
            }
            if !response.status().is_success() {
                return Err(refused(if self.credentials.is_some() {
                    ": the token service refused the credentials of registry.auth_file"
                } else {
                    ": the token service refused an anonymous token"
                }));
            }
            #[derive(serde::Deserialize)]
            struct Token {
                token: Option<String>,
                access_token: Option<String>,
            }
            let body = read_bounded(response, token_url.as_str()).await?;
            let token: Token = serde_json::from_slice(&body)
                .map_err(|_| refused(": the token service's answer is not a token"))?;
            let token = token
                .token
                .or(token.access_token)
                .ok_or_else(|| refused(": the token service's answer has no token"))?;
            return HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| refused(": the token is not a header value"));
        }
        let basic = challenges
            .iter()
            .any(|c| c.scheme.eq_ignore_ascii_case("basic"));
        match (&self.credentials, basic) {
            (Some(credentials), true) => {
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", credentials.user, credentials.password));
                HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| refused(": the credentials are not a header value"))
            }
            (None, _) => Err(refused(
                ": the registry asks for credentials (registry.auth_file)",
            )),
            (Some(_), false) => Err(refused(": the registry offers no known authentication")),
        }
    }
}

/// Whether `tag` is a tag as the distribution spec has them:
/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_TAG_BYTES
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn manifest_accept() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    headers
}

fn transport(url: &str, error: reqwest::Error) -> RegistryError {
    if error.is_timeout() {
        RegistryError::Timeout {
            url: url.to_string(),
        }
    } else {
        RegistryError::Connect {
            url: url.to_string(),
            message: error.to_string(),
        }
    }
}

/// The wait asked for by `Retry-After` in seconds (an HTTP date is read as
/// no wait given).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// The next page of the tag list, from the `Link` header
/// (`</v2/name/tags/list?n=…&last=…>; rel="next"`), resolved against `url`.
fn next_page(url: &str, headers: &HeaderMap) -> Option<String> {
    let link = headers.get(header::LINK)?.to_str().ok()?;
    let target = link.split(';').next()?.trim();
    let target = target.strip_prefix('<')?.strip_suffix('>')?;
    if !link.contains("rel=\"next\"") {
        return None;
    }
    url::Url::parse(url)
        .ok()?
        .join(target)
        .ok()
        .map(String::from)
}

/// The body, refused when longer than [`MAX_DOCUMENT_BYTES`].
async fn read_bounded(
    mut response: reqwest::Response,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::Invalid {
        url: url.to_string(),
        message: format!("longer than {MAX_DOCUMENT_BYTES} bytes"),
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        if e.is_timeout() {
            RegistryError::Timeout {
                url: url.to_string(),
            }
        } else {
            RegistryError::Read {
                url: url.to_string(),
                message: e.to_string(),
            }
        }
    })? {
        if (body.len() + chunk.len()) as u64 > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `body` with its sha256 digest, refused when it differs from `expected`.
fn checked(url: String, body: Vec<u8>, expected: Option<String>) -> Result<Fetched, RegistryError> {
    let digest = sha256_digest(&body);
    if let Some(expected) = expected {
        if expected != digest {
            return Err(RegistryError::Invalid {
                url,
                message: format!("the content's digest is {digest}, not {expected}"),
            });
        }
    }
    Ok(Fetched { digest, body })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hash {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(" 7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn next_page_follows_the_link_header() {
        let mut headers = HeaderMap::new();
        let url = "http://127.0.0.1:5000/v2/me/os/tags/list?n=2";
        assert_eq!(next_page(url, &headers), None);
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</v2/me/os/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_page(url, &headers).as_deref(),
            Some("http://127.0.0.1:5000/v2/me/os/tags/list?last=b&n=2")
        );
    }

    #[test]
    fn tags_are_the_distribution_specs() {
        for tag in [
            "latest",
            "43.20260105.3.0",
            "_x",
            "v1.2-rc_3",
            &"a".repeat(128),
        ] {
            assert!(is_tag(tag), "{tag}");
        }
        for tag in ["", ".x", "-x", "a/b", "a b", "é", &"a".repeat(129)] {
            assert!(!is_tag(tag), "{tag}");
        }
    }

    #[test]
    fn budget_refuses_past_its_cap() {
        let mut budget = Budget::new(2);
        assert!(budget.spend().is_ok() && budget.spend().is_ok());
        assert_eq!(budget.spend().unwrap_err().kind(), "request_cap");
        assert_eq!(budget.used, 2);
    }

    #[test]
    fn content_is_checked_against_its_digest() {
        let digest = sha256_digest(b"{}");
        assert_eq!(
            digest,
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert!(checked("u".into(), b"{}".to_vec(), Some(digest)).is_ok());
        let wrong = checked("u".into(), b"{ }".to_vec(), Some(sha256_digest(b"{}")));
        assert_eq!(wrong.unwrap_err().kind(), "invalid_manifest");
    }
}
