//! The `http` capability: a guest's request, sent on behalf of one connection.
//!
//! Every request goes through the connection's [`EgressPolicy`]
//! (checked again at each redirect hop), its DNS is resolved by the host through
//! [`EgressResolver`], its credential is attached by the host and
//! only to the host the guest addressed, and its duration and response size are bounded by
//! [`HttpLimits`]. Everything a guest can get wrong or be refused comes back as an [`HttpError`]
//! value whose text is safe to show it: secrets are redacted.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use http::{Method, StatusCode};
use reqwest::Url;

use crate::egress::{EgressDenied, EgressPolicy, EgressResolver, display_host, url_host};
use crate::secrets::{Secret, redact, redact_bytes};

/// A guest's HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The absolute URL, `https://host[:port]/path?query`.
    pub url: String,
    /// Headers to send. Those the host owns are refused, see [`FORBIDDEN_HEADERS`].
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
    /// A total timeout shorter than the connection's maximum, if the guest wants one.
    pub timeout: Option<Duration>,
}

impl Request {
    /// A request with no headers, body or timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::GET, url)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sets the guest's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// The upstream's response, after redirects. Any status, including 4xx and 5xx, is a response,
/// not an error: the plugin maps statuses to its own errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers in order; values that are not visible ASCII are decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The body, complete and at most [`HttpLimits::max_response_bytes`] long.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was not answered. Guest-visible: the runtime turns each variant into the WIT
/// error value of the same meaning, and the text is written for the plugin's author. It never
/// contains a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Egress refused: host off the allowlist, scheme not allowed, non-global address, or a
    /// redirect leading off policy.
    #[error("request denied: {0}")]
    Denied(String),
    /// The request (or the connection to the upstream) did not complete in time.
    #[error("request timed out: {0}")]
    Timeout(String),
    /// The upstream could not be reached or broke the exchange.
    #[error("transport error: {0}")]
    Transport(String),
    /// The response body exceeded the connection's cap.
    #[error("response body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
    /// The connection's credential could not be obtained (missing secret, token endpoint
    /// refusal).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The request itself is malformed or sets something the host owns.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// Headers the host owns. A guest setting one is refused rather than silently overridden, so a
/// plugin author learns at once that the host manages it.
pub const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
    "trailer",
];

/// Bounds on one connection's HTTP traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// How long establishing a TCP + TLS connection may take.
    pub connect_timeout: Duration,
    /// The total time a request may take when the guest asks for no timeout.
    pub default_timeout: Duration,
    /// The longest total time a guest may ask for; longer requests are cut to this.
    pub max_timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_response_bytes: u64,
    /// The largest request body accepted, in bytes.
    pub max_request_bytes: u64,
    /// How many redirects are followed (each to an allowed host only).
    pub max_redirects: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(120),
            max_response_bytes: 16 * 1024 * 1024,
            max_request_bytes: 16 * 1024 * 1024,
            max_redirects: 5,
        }
    }
}

impl HttpLimits {
    /// The total timeout for a request: the guest's if shorter than the maximum.
    pub fn effective_timeout(&self, requested: Option<Duration>) -> Duration {
        requested
            .unwrap_or(self.default_timeout)
            .min(self.max_timeout)
    }
}

/// Where the host puts a credential on an outgoing request.
#[derive(Clone)]
pub(crate) enum Credential {
    /// A header, e.g. `Authorization: Bearer ...`.
    Header(HeaderName, HeaderValue),
    /// A query parameter, e.g. `?api_key=...`.
    Query(String, Secret),
}

/// A request after validation, ready for the wire.
#[derive(Clone)]
pub(crate) struct Outgoing {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Vec<u8>>,
    /// Redirects may not leave the request's origin: its body carries secrets (a token
    /// request's client secret or refresh token).
    pub(crate) confined: bool,
}

/// One connection's HTTP clients and the rules it sends under.
pub(crate) struct Transport {
    /// Connects to global addresses only.
    client: reqwest::Client,
    /// Also connects to the non-global addresses of names some rule allows privately; used only
    /// for a hop whose own rule (host and port) allows private addresses. `None` when no rule
    /// does.
    private_client: Option<reqwest::Client>,
    policy: Arc<EgressPolicy>,
    limits: HttpLimits,
}

/// The TLS configuration shared by every connection: ring as the crypto provider, the Mozilla
/// roots from webpki-roots, no client certificates. Built once; rustls configs are immutable.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            // reqwest is built without http2.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        })
        .clone()
}

impl Transport {
    pub(crate) fn new(
        policy: Arc<EgressPolicy>,
        limits: HttpLimits,
    ) -> Result<Self, reqwest::Error> {
        let build = |resolver: EgressResolver| {
            reqwest::Client::builder()
                // Proxies would resolve and connect on our behalf, bypassing the egress resolver;
                // HTTP(S)_PROXY in the host's environment must not change where plugins can go.
                .no_proxy()
                // Redirects are followed by `execute`, which re-checks policy and credentials per
                // hop.
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(limits.connect_timeout)
                .dns_resolver(Arc::new(resolver))
                .tls_backend_preconfigured(tls_config())
                .user_agent(concat!("weft/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        let client = build(EgressResolver::new(policy.clone()))?;
        let private_client = if policy.any_private() {
            Some(build(EgressResolver::private(policy.clone()))?)
        } else {
            None
        };
        Ok(Self {
            client,
            private_client,
            policy,
            limits,
        })
    }

    pub(crate) fn policy(&self) -> &EgressPolicy {
        &self.policy
    }

    pub(crate) fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    /// Sends `req`, following allowed redirects. The credential goes only to the origin (scheme,
    /// host, port) the request was addressed to; a redirect elsewhere continues without it.
    /// `sensitive` lists the values to scrub from error text and from error responses.
    /// Returns the response and whether the credential was attached to the final hop.
    pub(crate) async fn execute(
        &self,
        req: Outgoing,
        credential: Option<&Credential>,
        sensitive: &[Secret],
    ) -> Result<(Response, bool), HttpError> {
        let Outgoing {
            mut method,
            mut url,
            mut headers,
            mut body,
            confined,
        } = req;
        let origin = url.origin();
        let mut redirects = 0u32;
        loop {
            let rule = self
                .policy
                .check_url(&url)
                .map_err(|d| HttpError::Denied(redact(&d.to_string(), sensitive)))?;
            let client = match &self.private_client {
                Some(private) if rule.allows_private() => private,
                _ => &self.client,
            };
            let host = host_for_messages(&url);
            let attach =
                credential.filter(|_| url.origin() == origin && rule.receives_credential());
            let mut wire_url = url.clone();
            let mut builder_headers = headers.clone();
            match attach {
                Some(Credential::Header(name, value)) => {
                    builder_headers.insert(name.clone(), value.clone());
                }
                Some(Credential::Query(name, value)) => {
                    // A same-origin redirect may echo the parameter back in its Location; send it
                    // once, with the current value. The query is re-encoded only then, so the
                    // guest's own encoding is otherwise left exactly as written.
                    if wire_url
                        .query_pairs()
                        .any(|(k, _)| k.eq_ignore_ascii_case(name))
                    {
                        let kept: Vec<(String, String)> = wire_url
                            .query_pairs()
                            .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        wire_url.query_pairs_mut().clear().extend_pairs(kept);
                    }
                    wire_url.query_pairs_mut().append_pair(name, value.expose());
                }
                None => {}
            }
            let mut builder = client
                .request(method.clone(), wire_url)
                .headers(builder_headers);
            if let Some(b) = &body {
                builder = builder.body(b.clone());
            }
            let mut resp = builder
                .send()
                .await
                .map_err(|e| map_reqwest_error(e, &host, sensitive))?;
            let status = resp.status();

            let followable = matches!(
                status,
                StatusCode::MOVED_PERMANENTLY
                    | StatusCode::FOUND
                    | StatusCode::SEE_OTHER
                    | StatusCode::TEMPORARY_REDIRECT
                    | StatusCode::PERMANENT_REDIRECT
            );
            if followable && let Some(location) = resp.headers().get(LOCATION) {
                let location = location.to_str().map_err(|_| {
                    HttpError::Transport(format!(
                        "{host} sent a redirect with an unreadable Location header"
                    ))
                })?;
                let next = url.join(location).map_err(|e| {
                    HttpError::Transport(format!(
                        "{host} redirected to an invalid URL ({e}): {}",
                        redact(location, sensitive)
                    ))
                })?;
                if redirects >= self.limits.max_redirects {
                    return Err(HttpError::Transport(format!(
                        "too many redirects: more than {} starting from {}",
                        self.limits.max_redirects,
                        host_for_messages(&url)
                    )));
                }
                if confined && next.origin() != origin {
                    return Err(HttpError::Denied(format!(
                        "redirect from {host} to {} refused: this request carries secrets in its body and may not leave {host}",
                        host_for_messages(&next)
                    )));
                }
                if let Err(denied) = self.policy.check_url(&next) {
                    return Err(HttpError::Denied(redact(
                        &format!(
                            "redirect from {host} to {} refused: {denied}",
                            host_for_messages(&next)
                        ),
                        sensitive,
                    )));
                }
                redirects += 1;
                // Browsers' rules: 303 always becomes GET; 301/302 turn POST into GET; 307/308
                // repeat the request as it was.
                let becomes_get = status == StatusCode::SEE_OTHER && method != Method::HEAD
                    || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                        && method == Method::POST);
                if becomes_get {
                    method = Method::GET;
                    body = None;
                    headers.remove(CONTENT_TYPE);
                }
                tracing::debug!(
                    connection = self.policy.connection(),
                    from = %host,
                    to = %host_for_messages(&next),
                    status = status.as_u16(),
                    "following redirect"
                );
                url = next;
                continue;
            }

            let limit = self.limits.max_response_bytes;
            if resp.content_length().is_some_and(|len| len > limit) {
                return Err(HttpError::TooLarge { limit });
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| map_reqwest_error(e, &host, sensitive))?
            {
                if (bytes.len() + chunk.len()) as u64 > limit {
                    return Err(HttpError::TooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
            let headers_out = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes());
                    (n.as_str().to_owned(), redact(&value, sensitive))
                })
                .collect();
            // An error response is where an upstream is most likely to echo a credential back
            // ("invalid token abc..."); success bodies are data and are passed through intact.
            let body_out = if status.is_success() {
                bytes
            } else {
                redact_bytes(&bytes, sensitive)
            };
            return Ok((
                Response {
                    status: status.as_u16(),
                    headers: headers_out,
                    body: body_out,
                },
                attach.is_some(),
            ));
        }
    }
}

/// `host[:port]` of a URL: what messages name, never the path or query (which may carry a
/// credential).
pub(crate) fn host_for_messages(url: &Url) -> String {
    display_host(&url_host(url).unwrap_or_default(), url.port())
}

fn map_reqwest_error(err: reqwest::Error, host: &str, sensitive: &[Secret]) -> HttpError {
    let err = err.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut chain: Vec<String> = Vec::new();
    while let Some(e) = source {
        if let Some(denied) = e.downcast_ref::<EgressDenied>() {
            return HttpError::Denied(redact(&denied.to_string(), sensitive));
        }
        let text = e.to_string();
        if !chain.iter().any(|c| c.contains(&text)) {
            chain.push(text);
        }
        source = e.source();
    }
    let detail = redact(&chain.join(": "), sensitive);
    if err.is_timeout() {
        HttpError::Timeout(format!("{host} did not answer in time ({detail})"))
    } else if err.is_connect() {
        HttpError::Transport(format!("cannot connect to {host}: {detail}"))
    } else {
        HttpError::Transport(format!("request to {host} failed: {detail}"))
    }
}

/// Checks a guest request and turns it into an [`Outgoing`]. `credential_header` and
/// `credential_query` name where this connection's credential goes: the guest may not set those
/// either.
pub(crate) fn validate(
    req: Request,
    limits: &HttpLimits,
    credential_header: Option<&str>,
    credential_query: Option<&str>,
) -> Result<Outgoing, HttpError> {
    let url = Url::parse(&req.url).map_err(|e| {
        HttpError::InvalidRequest(format!(
            "URL {:?} is not a valid absolute URL: {e}",
            truncate(&req.url)
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HttpError::InvalidRequest(
            "URLs must not carry user:password@; the host attaches the connection's credential"
                .into(),
        ));
    }
    if url.host().is_none() {
        return Err(HttpError::InvalidRequest(format!(
            "URL {:?} has no host",
            truncate(&req.url)
        )));
    }
    if let Some(param) = credential_query
        && url
            .query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case(param))
    {
        return Err(HttpError::InvalidRequest(format!(
            "query parameter {param:?} carries the connection's credential and is set by the host; remove it"
        )));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &req.headers {
        let lower = name.to_ascii_lowercase();
        if FORBIDDEN_HEADERS.contains(&lower.as_str())
            || lower.starts_with("proxy-")
            || credential_header.is_some_and(|h| h.eq_ignore_ascii_case(name))
        {
            return Err(HttpError::InvalidRequest(format!(
                "header {name:?} is set by the host and may not be set by a plugin"
            )));
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("invalid header name {name:?}")))?;
        let header_value = HeaderValue::from_str(value).map_err(|_| {
            HttpError::InvalidRequest(format!(
                "header {name:?} has an invalid value (control characters or non-ASCII)"
            ))
        })?;
        headers.append(header_name, header_value);
    }
    if let Some(body) = &req.body
        && body.len() as u64 > limits.max_request_bytes
    {
        return Err(HttpError::InvalidRequest(format!(
            "request body is {} bytes, over the limit of {} bytes",
            body.len(),
            limits.max_request_bytes
        )));
    }
    debug_assert!(!headers.contains_key(CONTENT_LENGTH));
    Ok(Outgoing {
        method: req.method,
        url,
        headers,
        body: req.body,
        confined: false,
    })
}

fn truncate(s: &str) -> String {
    if s.len() <= 200 {
        s.to_owned()
    } else {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}
