//! The HTTP surface both services share: the `/v1/graph` query, the
//! Cincinnati `{"kind","value"}` error type, content negotiation, CORS and
//! the prepared graph body.

use actix_web::http::header::{
    self, Accept, AcceptEncoding, Encoding, Header, HeaderValue, Preference, Quality,
};
use actix_web::http::StatusCode;
use actix_web::mime;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use commons::graph::{is_well_formed_name, GraphScope, Scheme, MAX_NAME_LEN};
use std::borrow::Cow;
use std::io::Write;

/// An error returned to a client as `{"kind": "…", "value": "…"}`.
///
/// `kind` is a stable machine word (also a metric label); `value` a sentence
/// a person can act on. Nothing a client sends maps to a 500.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// A required query parameter is absent or empty.
    #[error("the query parameter '{0}' is required")]
    MissingParameter(&'static str),
    /// A query parameter has a value that cannot be used.
    #[error("the query parameter '{name}' is invalid: {reason}")]
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// A query parameter was given more than once.
    #[error("the query parameter '{0}' is given more than once")]
    RepeatedParameter(&'static str),
    /// A well-formed stream/basearch that is not served.
    #[error("no update graph is served for stream '{stream}' and basearch '{basearch}'")]
    UnknownScope {
        /// Requested stream.
        stream: String,
        /// Requested basearch.
        basearch: String,
    },
    /// The client does not accept JSON.
    #[error("the update graph is only available as application/json")]
    NotAcceptable,
    /// The graph has not been built yet.
    #[error("the update graph for {0} is not available yet, retry later")]
    NotReady(String),
    /// The upstream graph source cannot be reached and nothing is cached.
    #[error("the update graph is temporarily unavailable, retry later")]
    UpstreamUnavailable,
    /// No such path.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// Wrong method for an existing path.
    #[error("method {0} is not allowed here; use GET")]
    MethodNotAllowed(String),
    /// The request target is longer than the service reads.
    #[error(
        "the request URI is longer than {} bytes",
        crate::limits::MAX_URI_BYTES
    )]
    UriTooLong,
    /// The fleet policy file cannot be loaded.
    #[error("the fleet policy is not available: {0}")]
    PolicyUnavailable(String),
    /// The policy-engine's rollout outcomes were never read.
    #[error("the rollout outcomes are not available: {0}")]
    RolloutsUnavailable(String),
    /// The request's header section is larger than the service reads.
    #[error(
        "the request headers are larger than {} bytes",
        crate::limits::MAX_HEADER_BYTES
    )]
    HeadersTooLarge,
    /// The request head did not arrive whole in time.
    #[error(
        "the request head did not arrive whole within {} seconds",
        crate::server::HEAD_TIMEOUT.as_secs()
    )]
    RequestTimeout,
    /// The request announces a body; no endpoint takes one.
    #[error("the request has a body (Content-Length or Transfer-Encoding); no endpoint takes one")]
    BodyNotAccepted,
}

impl GraphError {
    /// The stable machine word of this error.
    pub fn kind(&self) -> &'static str {
        match self {
            GraphError::MissingParameter(_) => "missing_parameter",
            GraphError::InvalidParameter { .. } => "invalid_parameter",
            GraphError::RepeatedParameter(_) => "repeated_parameter",
            GraphError::UnknownScope { .. } => "unknown_scope",
            GraphError::NotAcceptable => "not_acceptable",
            GraphError::NotReady(_) => "graph_not_ready",
            GraphError::UpstreamUnavailable => "upstream_unavailable",
            GraphError::NotFound(_) => "not_found",
            GraphError::MethodNotAllowed(_) => "method_not_allowed",
            GraphError::UriTooLong => "uri_too_long",
            GraphError::PolicyUnavailable(_) => "policy_unavailable",
            GraphError::RolloutsUnavailable(_) => "rollouts_unavailable",
            GraphError::HeadersTooLarge => "headers_too_large",
            GraphError::RequestTimeout => "request_timeout",
            GraphError::BodyNotAccepted => "body_not_accepted",
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> String {
        serde_json::json!({"kind": self.kind(), "value": self.to_string()}).to_string()
    }
}

impl ResponseError for GraphError {
    fn status_code(&self) -> StatusCode {
        match self {
            GraphError::MissingParameter(_)
            | GraphError::InvalidParameter { .. }
            | GraphError::RepeatedParameter(_) => StatusCode::BAD_REQUEST,
            GraphError::UnknownScope { .. } | GraphError::NotFound(_) => StatusCode::NOT_FOUND,
            GraphError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            GraphError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GraphError::UriTooLong => StatusCode::URI_TOO_LONG,
            GraphError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GraphError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            GraphError::BodyNotAccepted => StatusCode::PAYLOAD_TOO_LARGE,
            GraphError::NotReady(_)
            | GraphError::UpstreamUnavailable
            | GraphError::PolicyUnavailable(_)
            | GraphError::RolloutsUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/json");
        if let GraphError::MethodNotAllowed(_) = self {
            response.insert_header((header::ALLOW, "GET, HEAD"));
        }
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "10"));
        }
        response.body(self.body())
    }
}

/// The parameters of a `GET /v1/graph` request that the services use,
/// borrowed from the query string where nothing needed decoding.
/// Unknown parameters are ignored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphQuery<'a> {
    /// Update stream.
    pub stream: Cow<'a, str>,
    /// Base architecture.
    pub basearch: Cow<'a, str>,
    /// Whether the client follows the OCI graph.
    pub oci: bool,
    /// Explicit rollout wariness, finite (not yet clamped).
    pub rollout_wariness: Option<f64>,
    /// The node's UUID.
    pub node_uuid: Option<Cow<'a, str>>,
    /// The node's current version.
    pub os_version: Option<Cow<'a, str>>,
    /// The node's current payload (checksum or pullspec).
    pub os_checksum: Option<Cow<'a, str>>,
    /// The node's group (Zincati's `identity.group`).
    pub group: Option<Cow<'a, str>>,
    /// The node's platform (`metal`, `aws`, …).
    pub platform: Option<Cow<'a, str>>,
}

impl<'a> GraphQuery<'a> {
    /// Parses a raw (still percent-encoded) query string, as
    /// `application/x-www-form-urlencoded` ([`url::form_urlencoded`]: `+`
    /// is a space, `%XX` a byte); values are borrowed from `raw` when
    /// nothing needed decoding.
    pub fn parse(raw: &'a str) -> Result<Self, GraphError> {
        let mut stream = None;
        let mut basearch = None;
        let mut oci = None;
        let mut wariness = None;
        let mut node_uuid = None;
        let mut os_version = None;
        let mut os_checksum = None;
        let mut group = None;
        let mut platform = None;
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let (name, slot): (&'static str, &mut Option<Cow<'a, str>>) = match &*key {
                "stream" => ("stream", &mut stream),
                "basearch" => ("basearch", &mut basearch),
                "oci" => ("oci", &mut oci),
                "rollout_wariness" => ("rollout_wariness", &mut wariness),
                "node_uuid" => ("node_uuid", &mut node_uuid),
                "os_version" => ("os_version", &mut os_version),
                "os_checksum" => ("os_checksum", &mut os_checksum),
                "group" => ("group", &mut group),
                "platform" => ("platform", &mut platform),
                _ => continue,
            };
            if slot.is_some() {
                return Err(GraphError::RepeatedParameter(name));
            }
            // The decoder replaces bytes that are not UTF-8.
            if value.contains(char::REPLACEMENT_CHARACTER) {
                return Err(GraphError::InvalidParameter {
                    name,
                    reason: "the value is not valid UTF-8".to_string(),
                });
            }
            *slot = Some(value);
        }
        let stream = required_name("stream", stream)?;
        let basearch = required_name("basearch", basearch)?;
        let oci = match oci.as_deref() {
            None => false,
            Some("true") | Some("1") => true,
            Some("false") | Some("0") => false,
            Some(other) => {
                return Err(GraphError::InvalidParameter {
                    name: "oci",
                    reason: format!("expected true, false, 1 or 0, got '{}'", truncate(other)),
                })
            }
        };
        let rollout_wariness = match wariness {
            None => None,
            Some(text) => match text.trim().parse::<f64>() {
                Ok(w) if w.is_finite() => Some(w),
                _ => {
                    return Err(GraphError::InvalidParameter {
                        name: "rollout_wariness",
                        reason: format!(
                            "expected a finite number between 0 and 1, got '{}'",
                            truncate(&text)
                        ),
                    })
                }
            },
        };
        Ok(GraphQuery {
            stream,
            basearch,
            oci,
            rollout_wariness,
            node_uuid,
            os_version,
            os_checksum,
            group,
            platform,
        })
    }

    /// The payload scheme the client asked for.
    pub fn scheme(&self) -> Scheme {
        Scheme::from_oci_flag(self.oci)
    }

    /// The graph scope the client asked for.
    pub fn scope(&self) -> GraphScope {
        GraphScope {
            stream: self.stream.to_string(),
            basearch: self.basearch.to_string(),
            scheme: self.scheme(),
        }
    }
}

/// Shortens a client-supplied value before echoing it in an error.
fn truncate(value: &str) -> String {
    const MAX: usize = 40;
    if value.chars().count() <= MAX {
        value.to_string()
    } else {
        let mut short: String = value.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

/// A required stream or basearch name: present, non-empty, short, and made
/// of letters, digits, `.`, `_` and `-`.
fn required_name<'a>(
    name: &'static str,
    value: Option<Cow<'a, str>>,
) -> Result<Cow<'a, str>, GraphError> {
    let value = match value {
        Some(v) if !v.is_empty() => v,
        _ => return Err(GraphError::MissingParameter(name)),
    };
    if !is_well_formed_name(&value) {
        return Err(GraphError::InvalidParameter {
            name,
            reason: format!(
                "expected at most {MAX_NAME_LEN} letters, digits, '.', '_' or '-', got '{}'",
                truncate(&value)
            ),
        });
    }
    Ok(value)
}

/// Checks that the request's `Accept` header admits JSON. No `Accept`
/// header admits anything; otherwise the most specific range that matches
/// `application/json` decides (the type itself, then `application/*`, then
/// `*/*`), so `application/json;q=0, */*` refuses JSON (RFC 9110, 12.5.1).
/// Several `Accept` lines count as one list.
pub fn check_accepts_json(req: &HttpRequest) -> Result<(), GraphError> {
    let mut lines = req.headers().get_all(header::ACCEPT);
    match (lines.next(), lines.next()) {
        // No Accept header, or exactly Zincati's: answered without parsing.
        (None, _) => return Ok(()),
        (Some(line), None) if line.as_bytes() == b"application/json" => return Ok(()),
        _ => {}
    }
    match Accept::parse(req) {
        Ok(accept) if json_quality(&accept) > Quality::ZERO => Ok(()),
        _ => Err(GraphError::NotAcceptable),
    }
}

/// The quality `accept` gives `application/json`: that of the most specific
/// matching range (the highest one if a range is listed twice), zero when
/// none matches.
fn json_quality(accept: &Accept) -> Quality {
    let mut best: Option<(u8, Quality)> = None;
    for range in accept.iter() {
        let specificity = match (range.item.type_(), range.item.subtype()) {
            (mime::APPLICATION, mime::JSON) => 2,
            (mime::APPLICATION, mime::STAR) => 1,
            (mime::STAR, mime::STAR) => 0,
            _ => continue,
        };
        if best.is_none_or(|found| (specificity, range.quality) > found) {
            best = Some((specificity, range.quality));
        }
    }
    best.map_or(Quality::ZERO, |(_, quality)| quality)
}

/// Whether the response to `req` should be gzip-compressed: when
/// `Accept-Encoding` gives gzip a non-zero quality, at least that of
/// identity. The most specific entry gives a coding its quality: the one
/// naming it, else `*` (so `gzip;q=0, *` is identity); identity unlisted
/// and not refused through `*` is acceptable but yields to gzip (RFC 9110,
/// 12.5.3). Several lines count as one list.
fn accepts_gzip(req: &HttpRequest) -> bool {
    // Zincati sends no Accept-Encoding: answer it without parsing.
    if !req.headers().contains_key(header::ACCEPT_ENCODING) {
        return false;
    }
    let Ok(accept) = AcceptEncoding::parse(req) else {
        return false;
    };
    // The highest quality listed for gzip, for identity and for `*`.
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for entry in accept.iter() {
        let listed = match &entry.item {
            Preference::Any => &mut any,
            Preference::Specific(coding) if *coding == Encoding::gzip() => &mut gzip,
            Preference::Specific(coding) if *coding == Encoding::identity() => &mut identity,
            Preference::Specific(_) => continue,
        };
        *listed = (*listed).max(Some(entry.quality));
    }
    let gzip = gzip.or(any).unwrap_or(Quality::ZERO);
    let identity = identity.or(any).unwrap_or(Quality::ZERO);
    gzip > Quality::ZERO && gzip >= identity
}

/// A serialized JSON document ready to be sent: the body, its `ETag`, and
/// its gzip encoding computed once, on the first request that accepts it.
#[derive(Debug)]
pub struct GraphBody {
    json: Bytes,
    /// Strong validator of the identity body: a hash of its bytes, so the
    /// same document has the same tag in every process.
    etag: String,
    /// The `ETag` headers of the identity and gzip bodies, made once.
    etag_headers: [HeaderValue; 2],
    gzip: std::sync::OnceLock<Bytes>,
}

impl GraphBody {
    /// Prepares a body from its JSON bytes (their spare capacity given
    /// back: a body is kept, and counted by its length).
    pub fn new(mut json: Vec<u8>) -> Self {
        json.shrink_to_fit();
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(0, 0);
        std::hash::Hasher::write(&mut hasher, &json);
        let hash = siphasher::sip128::Hasher128::finish128(&hasher).as_u128();
        let etag = format!("\"{hash:032x}\"");
        let gzip_etag = format!("\"{hash:032x}-gzip\"");
        let header = |tag: String| {
            HeaderValue::from_maybe_shared(Bytes::from(tag)).expect("hex digits make a header")
        };
        GraphBody {
            json: Bytes::from(json),
            etag_headers: [header(etag.clone()), header(gzip_etag)],
            etag,
            gzip: std::sync::OnceLock::new(),
        }
    }

    /// The JSON body.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The `ETag` of the identity body (quoted); the gzip body's is the
    /// same with `-gzip` before the closing quote.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// The gzip-compressed body.
    pub fn gzip(&self) -> &Bytes {
        self.gzip.get_or_init(|| {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.json.len() / 4),
                flate2::Compression::default(),
            );
            encoder
                .write_all(&self.json)
                .expect("writing to a Vec cannot fail");
            Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
        })
    }

    /// The response for `req`: gzip when it accepts it, identity otherwise;
    /// 304 when its `If-None-Match` names the representation's `ETag`.
    pub fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let gzip = accepts_gzip(req);
        let etag = &self.etag_headers[usize::from(gzip)];
        let not_modified = req
            .headers()
            .get_all(header::IF_NONE_MATCH)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim())
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
        let mut response = if not_modified {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header((header::VARY, HeaderValue::from_static("Accept-Encoding")))
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
            .insert_header((header::ETAG, etag.clone()));
        if not_modified {
            return response.finish();
        }
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ));
        if gzip {
            response.insert_header((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            response.body(self.gzip().clone())
        } else {
            response.body(self.json.clone())
        }
    }
}

/// Which origins the graph browser may read from (CORS).
#[derive(Clone, Debug)]
pub struct Cors {
    /// `None`: any origin, answered with `Access-Control-Allow-Origin: *`.
    allowlist: Option<std::sync::Arc<[HeaderValue]>>,
}

/// CORS for `allowlist` (absent: any origin). See [`cors_middleware`].
pub fn cors(allowlist: Option<&[String]>) -> Cors {
    Cors {
        allowlist: allowlist.map(|origins| {
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok())
                .collect()
        }),
    }
}

impl Cors {
    /// The `Access-Control-Allow-Origin` value for a request from
    /// `origin`, if it is allowed.
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        match &self.allowlist {
            None => Some(HeaderValue::from_static("*")),
            Some(list) => list.contains(origin).then(|| origin.clone()),
        }
    }

    /// Adds the CORS headers for a request from `origin` to `headers`.
    fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut header::HeaderMap) {
        if self.allowlist.is_some() {
            // The answer depends on the origin: caches must know.
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(allowed) = origin.and_then(|origin| self.allow(origin)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
        }
    }
}

/// CORS for every answer of the app it wraps (outermost), errors included:
/// an allowed origin gets `Access-Control-Allow-Origin` on every status; a
/// preflight (`OPTIONS` with `Access-Control-Request-Method`) from an
/// allowed origin is answered 200 here, and counted like other answers;
/// anything from another origin is answered as without CORS, with no CORS
/// header and never an error of its own.
pub async fn cors_middleware<B: actix_web::body::MessageBody + 'static>(
    cors: Cors,
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>>, actix_web::Error> {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let preflight = req.method() == actix_web::http::Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if let Some(allowed) = cors.allow(&origin) {
            let mut response = HttpResponse::Ok();
            response
                .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed))
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "3600"));
            if let Some(asked) = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
            {
                response.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked));
            }
            if cors.allowlist.is_some() {
                response.insert_header((header::VARY, "Origin"));
            }
            if let Some(metrics) =
                req.app_data::<actix_web::web::Data<crate::metrics::HttpMetrics>>()
            {
                metrics.observe(metrics.label(req.path()), 200, 0.0);
            }
            return Ok(req.into_response(response.finish()).map_into_right_body());
        }
    }
    let mut response = next.call(req).await?;
    cors.decorate(Some(&origin), response.headers_mut());
    Ok(response.map_into_left_body())
}

/// The OpenAPI 3 description of `/v1/graph`, served at `/v1/openapi`.
pub const OPENAPI: &str = include_str!("../openapi.yaml");

/// The OpenAPI description with further `paths` entries (YAML indented as
/// under `paths:`) added after the shared ones.
pub fn openapi_with_paths(paths: &str) -> String {
    let at = OPENAPI
        .find("\ncomponents:")
        .expect("the OpenAPI description has components")
        + 1;
    format!("{}{paths}{}", &OPENAPI[..at], &OPENAPI[at..])
}

/// `GET /v1/openapi`.
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(OPENAPI)
}

/// Fallback for unknown paths and methods: a JSON 404 or 405.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, GraphError> {
    Err(GraphError::NotFound(truncate(req.path())))
}

/// Fallback for a known path with the wrong method: a JSON 405.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, GraphError> {
    Err(GraphError::MethodNotAllowed(truncate(
        req.method().as_str(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    /// Zincati's query (graph semantics, section 4): every parameter, its
    /// pullspec percent-encoded, in any order.
    const ZINCATI_QUERY: [&str; 9] = [
        "basearch=x86_64",
        "stream=stable",
        "os_version=41.20250105.3.0",
        "os_checksum=quay.io%2Ffedora%2Ffedora-coreos%40sha256%3Aab12",
        "group=default",
        "node_uuid=e0f3745b108f471cbd4883c6fbed8cdd",
        "platform=metal",
        "rollout_wariness=0.500000",
        "oci=true",
    ];

    #[test]
    fn parses_zincati_query() {
        let expected = GraphQuery {
            stream: "stable".into(),
            basearch: "x86_64".into(),
            oci: true,
            rollout_wariness: Some(0.5),
            node_uuid: Some("e0f3745b108f471cbd4883c6fbed8cdd".into()),
            os_version: Some("41.20250105.3.0".into()),
            os_checksum: Some("quay.io/fedora/fedora-coreos@sha256:ab12".into()),
            group: Some("default".into()),
            platform: Some("metal".into()),
        };
        let mut pairs = ZINCATI_QUERY;
        for turn in 0..pairs.len() {
            pairs.rotate_left(1);
            pairs.swap(0, turn);
            let raw = pairs.join("&");
            let q = GraphQuery::parse(&raw).unwrap();
            assert_eq!(q, expected, "{raw}");
            // Only the pullspec needed decoding.
            assert!(matches!(q.node_uuid, Some(Cow::Borrowed(_))), "{raw}");
            assert!(matches!(q.os_checksum, Some(Cow::Owned(_))), "{raw}");
        }
        assert_eq!(expected.scheme(), Scheme::Oci);
    }

    #[test]
    fn malformed_queries_get_the_documented_errors() {
        let error = |qs: &str| GraphQuery::parse(qs).unwrap_err();
        // A '%' without two hex digits is kept as written, and is not part
        // of a name.
        for (bad, echoed) in [
            ("st%zzable", "st%zzable"),
            ("stable%", "stable%"),
            ("stable%F", "stable%F"),
            ("%%41", "%A"),
        ] {
            let err = error(&format!("basearch=x86_64&stream={bad}"));
            assert_eq!(err.kind(), "invalid_parameter", "{bad}");
            assert_eq!(
                err.to_string(),
                format!(
                    "the query parameter 'stream' is invalid: expected at most \
                     {MAX_NAME_LEN} letters, digits, '.', '_' or '-', got '{echoed}'"
                ),
            );
        }
        // Bytes that are not UTF-8, encoded or in a '%' kept as written.
        for bad in ["%FF", "%C3", "ok%ED%A0%80"] {
            let err = error(&format!("basearch=x86_64&stream=stable&os_version={bad}"));
            assert_eq!(
                err,
                GraphError::InvalidParameter {
                    name: "os_version",
                    reason: "the value is not valid UTF-8".to_string()
                },
                "{bad}"
            );
        }
        // A key given twice, however it is spelled, even when empty.
        for repeated in [
            "stream=stable&basearch=x86_64&stream=next",
            "stream=stable&basearch=x86_64&str%65am=stable",
            "stream=&stream=stable&basearch=x86_64",
            "basearch=x86_64&stream=stable&group=a&group=a",
        ] {
            let err = error(repeated);
            assert_eq!(err.kind(), "repeated_parameter", "{repeated}");
            assert!(
                err.to_string().ends_with("is given more than once"),
                "{err}"
            );
        }
        // A huge value is echoed shortened.
        let huge = "9".repeat(8_000);
        let err = error(&format!(
            "basearch=x86_64&stream=stable&rollout_wariness={huge}"
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "the query parameter 'rollout_wariness' is invalid: expected a finite \
                 number between 0 and 1, got '{}…'",
                &huge[..40]
            )
        );
        // A huge value of a parameter that is only passed on is kept whole.
        let raw = format!("basearch=x86_64&stream=stable&os_version={huge}");
        let q = GraphQuery::parse(&raw).unwrap();
        assert_eq!(q.os_version.as_deref(), Some(huge.as_str()));
        // Unknown keys, even undecodable ones, are ignored.
        assert!(GraphQuery::parse("%FF=%FF&stream=s&basearch=x&&=&x").is_ok());
    }

    #[test]
    fn values_are_borrowed_unless_encoded() {
        let q = GraphQuery::parse("stream=stable&basearch=x86_64&node_uuid=ab%2Bc&os_version=4+1")
            .unwrap();
        assert!(matches!(q.stream, Cow::Borrowed("stable")));
        assert_eq!(q.node_uuid.as_deref(), Some("ab+c"));
        assert_eq!(q.os_version.as_deref(), Some("4 1"));
        // Keys are decoded too.
        let q = GraphQuery::parse("stre%61m=s&basearch=x&node%5Fuuid=u").unwrap();
        assert_eq!((&*q.stream, q.node_uuid.as_deref()), ("s", Some("u")));
    }

    #[test]
    fn rejects_bad_parameters() {
        let kind = |qs: &str| GraphQuery::parse(qs).unwrap_err().kind();
        assert_eq!(kind("stream=stable"), "missing_parameter");
        assert_eq!(kind("stream=&basearch=x86_64"), "missing_parameter");
        assert_eq!(kind("stream=a/b&basearch=x86_64"), "invalid_parameter");
        assert_eq!(kind("stream=s&basearch=x&oci=yes"), "invalid_parameter");
        assert_eq!(kind("stream=s&basearch=x&oci="), "invalid_parameter");
        for bad in ["NaN", "inf", "-inf", "abc", ""] {
            assert_eq!(
                kind(&format!("stream=s&basearch=x&rollout_wariness={bad}")),
                "invalid_parameter"
            );
        }
        assert_eq!(kind("stream=s&stream=t&basearch=x"), "repeated_parameter");
        assert_eq!(kind("stream=%FF&basearch=x"), "invalid_parameter");
        assert!(
            GraphQuery::parse("stream=s&basearch=x&oci=1&x=%FF")
                .unwrap()
                .oci
        );
    }

    #[test]
    fn error_status_and_body() {
        let err = GraphError::MissingParameter("stream");
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_str(&err.body()).unwrap();
        assert_eq!(body["kind"], "missing_parameter");
        assert_eq!(body["value"], "the query parameter 'stream' is required");
    }

    #[test]
    fn content_negotiation() {
        for (accept, ok) in [
            ("application/json", true),
            ("Application/JSON", true),
            ("application/json; charset=utf-8", true),
            ("text/html, application/json;q=0.9", true),
            ("*/*", true),
            ("application/*", true),
            ("text/html", false),
            ("application/json;q=0", false),
            ("application/json;Q=0", false),
            ("", false),
            // The most specific range decides, whatever the order.
            ("application/json;q=0, */*", false),
            ("*/*, application/json;q=0", false),
            ("application/*;q=0, */*", false),
            ("application/json, application/*;q=0", true),
            ("*/*;q=0, application/json;q=0.1", true),
        ] {
            let req = TestRequest::default()
                .insert_header((header::ACCEPT, accept))
                .to_http_request();
            assert_eq!(check_accepts_json(&req).is_ok(), ok, "{accept:?}");
        }
        assert!(check_accepts_json(&TestRequest::default().to_http_request()).is_ok());
        // Several Accept lines are one list.
        let req = |lines: &[&str]| {
            let mut req = TestRequest::default();
            for line in lines {
                req = req.append_header((header::ACCEPT, *line));
            }
            req.to_http_request()
        };
        assert!(check_accepts_json(&req(&["text/html", "application/json"])).is_ok());
        assert!(check_accepts_json(&req(&["application/json;q=0", "*/*"])).is_err());
    }

    #[test]
    fn gzip_negotiation() {
        let gzip = |lines: &[&str]| {
            let mut req = TestRequest::default();
            for line in lines {
                req = req.append_header((header::ACCEPT_ENCODING, *line));
            }
            accepts_gzip(&req.to_http_request())
        };
        assert!(!gzip(&[]));
        assert!(gzip(&["gzip"]));
        assert!(gzip(&["GZIP"]));
        assert!(gzip(&["br, gzip"]));
        assert!(gzip(&["gzip, deflate, br, zstd"]));
        assert!(gzip(&["gzip;q=0.5"]));
        assert!(gzip(&["gzip, *;q=0"]));
        assert!(!gzip(&["gzip;q=0"]));
        assert!(!gzip(&["gzip;Q=0"]));
        assert!(!gzip(&["br"]));
        assert!(!gzip(&["identity"]));
        assert!(!gzip(&[""]));
        // The most specific entry decides, whatever the order.
        assert!(!gzip(&["gzip;q=0, *"]));
        assert!(!gzip(&["*, gzip;q=0"]));
        assert!(gzip(&["*"]));
        assert!(gzip(&["gzip;q=0.5, identity;q=0.5"]));
        // Identity preferred by the client.
        assert!(!gzip(&["gzip;q=0.5, identity"]));
        // Several lines are one list.
        assert!(gzip(&["br", "gzip"]));
        assert!(!gzip(&["gzip;q=0", "*"]));
    }

    #[test]
    fn gzip_only_when_accepted() {
        let body = GraphBody::new(br#"{"nodes":[],"edges":[]}"#.to_vec());
        let plain = body.respond(&TestRequest::default().to_http_request());
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let req = TestRequest::default()
            .insert_header((header::ACCEPT_ENCODING, "br, gzip"))
            .to_http_request();
        let zipped = body.respond(&req);
        assert_eq!(
            zipped.headers().get(header::CONTENT_ENCODING).unwrap(),
            "gzip"
        );
        let refused = TestRequest::default()
            .insert_header((header::ACCEPT_ENCODING, "gzip;q=0"))
            .to_http_request();
        assert!(body
            .respond(&refused)
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_none());
    }
}
