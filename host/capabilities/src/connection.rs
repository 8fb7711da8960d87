//! Connections: one configured account on one upstream service, and the registry the runtime
//! hands to plugins.
//!
//! A [`Connection`] owns everything a plugin's requests on its behalf need: the egress policy,
//! an HTTP client whose resolver enforces it, the credential source and its token cache, and the
//! limits. Plugins refer to a connection by name only ([`Connections::require`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{AuthSpec, Authenticator, CredentialPlacement};
use crate::budget::RateBudget;
use crate::egress::{DerivedHost, EgressError, EgressPolicy, HostRule};
use crate::hmac::MacError;
use crate::http::{self, HttpError, HttpLimits, Request, Response, Transport, host_for_messages};
use crate::secrets::{Secret, SecretRef, Secrets};

/// Everything needed to build a [`Connection`]: the flow file's connection entry plus what the
/// runtime learned from the plugin's `describe`.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// The connection's name in the flow file.
    pub name: String,
    /// The tenant that owns it; secrets are looked up under this tenant.
    pub tenant: String,
    /// The connection's plugin config (e.g. `{ "data_center": "jp" }`), kept for the runtime.
    pub config: serde_json::Value,
    /// How it authenticates.
    pub auth: AuthSpec,
    /// Hosts the flow file allows explicitly, with their `allow_http` / `allow_private` flags.
    pub egress: Vec<HostRule>,
    /// Hosts derived from the flow file: the plugin's host templates expanded over the config.
    /// https and global addresses only. (The token URL's host is added by [`Connection::new`].)
    pub derived_hosts: Vec<DerivedHost>,
    /// Hosts the plugin declared that nothing in the flow file implies (templates without a
    /// placeholder): not allowed unless the flow's egress lists them. Kept to show operators.
    pub declined_hosts: Vec<String>,
    /// Where the credential goes, as the plugin's `describe` says.
    pub placement: CredentialPlacement,
    /// The secret webhook signatures are computed with, if the connection receives webhooks.
    pub webhook_secret: Option<SecretRef>,
    /// Timeouts and size caps.
    pub limits: HttpLimits,
    /// Requests per period for this connection's credential, shared with every connection
    /// using the same credential; `None` for no budget.
    pub rate: Option<RateBudget>,
}

impl ConnectionSpec {
    /// A spec for tenant `default` with no auth, no hosts and default limits.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            tenant: weft_store::DEFAULT_TENANT.to_owned(),
            config: serde_json::Value::Null,
            auth: AuthSpec::None,
            egress: Vec::new(),
            derived_hosts: Vec::new(),
            declined_hosts: Vec::new(),
            placement: CredentialPlacement::default(),
            webhook_secret: None,
            limits: HttpLimits::default(),
            rate: None,
        }
    }
}

impl ConnectionSpec {
    /// The hosts the connection may reach: the flow's `egress`, the hosts derived from its
    /// config, and the host of its auth's token URL (the operator's, reached for the exchange
    /// like any host the flow names). Nothing else: [`declined_hosts`](Self::declined_hosts) are
    /// not on it.
    pub fn policy(&self) -> Result<EgressPolicy, EgressError> {
        let mut derived = self.derived_hosts.clone();
        if let Some(token_url) = self.auth.token_url()
            && let Ok(url) = reqwest::Url::parse(token_url)
            && let Some(host) = crate::egress::url_host(&url)
        {
            let host = crate::egress::display_host(&host, url.port());
            derived.push(DerivedHost::new(host, "auth token_url"));
        }
        EgressPolicy::new(self.name.clone(), self.egress.clone(), derived)
    }
}

/// Why a connection could not be set up. These are configuration errors, reported before any
/// plugin runs.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// A host in the egress list or derived from the config is malformed.
    #[error("connection {connection:?}: {source}")]
    Egress {
        /// The connection's name.
        connection: String,
        /// What is wrong.
        #[source]
        source: EgressError,
    },
    /// The plugin's credential placement is unusable.
    #[error("connection {connection:?}: invalid credential placement from the plugin: {reason}")]
    InvalidPlacement {
        /// The connection's name.
        connection: String,
        /// What is wrong.
        reason: String,
    },
    /// The token endpoint is malformed or not reachable under the connection's egress policy.
    #[error(
        "connection {connection:?}: token endpoint {token_url:?} cannot be used: {reason} (token endpoints are reached under the same egress rules as plugin requests)"
    )]
    TokenEndpoint {
        /// The connection's name.
        connection: String,
        /// The configured token URL.
        token_url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("connection {connection:?}: cannot build the HTTP client: {source}")]
    Client {
        /// The connection's name.
        connection: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
}

struct Inner {
    name: String,
    tenant: String,
    config: serde_json::Value,
    transport: Transport,
    auth: Authenticator,
    webhook_secret: Option<SecretRef>,
    secrets: Secrets,
    budget: Option<Arc<crate::budget::Bucket>>,
}

/// A configured connection. Cheap to clone; clones share the client and token cache.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
    /// Where the requests it sends are counted: the run's usage.
    usage: Option<Arc<crate::Usage>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("name", &self.inner.name)
            .field("tenant", &self.inner.tenant)
            .field("auth", &self.inner.auth.spec().kind())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Builds a connection: its egress policy, its own HTTP client (so its resolver carries its
    /// policy), and its credential source. Secrets are resolved when first needed, not here, so a
    /// connection can be built before its secrets are set (and a static credential is re-read
    /// after the upstream rejects it with 401); configuration mistakes that can be seen now are
    /// reported now.
    pub fn new(spec: ConnectionSpec, secrets: Secrets) -> Result<Self, ConnectionError> {
        let policy = spec.policy();
        let ConnectionSpec {
            name,
            tenant,
            config,
            auth,
            egress: _,
            derived_hosts: _,
            declined_hosts: _,
            placement,
            webhook_secret,
            limits,
            rate,
        } = spec;
        let budget = rate
            .map(|r| crate::budget::shared(&crate::budget::credential_identity(&tenant, &auth), r));
        let policy = policy.map_err(|source| ConnectionError::Egress {
            connection: name.clone(),
            source,
        })?;
        if !matches!(auth, AuthSpec::None | AuthSpec::Basic { .. }) {
            placement
                .validate()
                .map_err(|reason| ConnectionError::InvalidPlacement {
                    connection: name.clone(),
                    reason,
                })?;
        }
        if let Some(token_url) = auth.token_url() {
            let token_err = |reason: String| ConnectionError::TokenEndpoint {
                connection: name.clone(),
                token_url: token_url.to_owned(),
                reason,
            };
            let url = reqwest::Url::parse(token_url).map_err(|e| token_err(e.to_string()))?;
            policy
                .check_url(&url)
                .map_err(|d| token_err(d.to_string()))?;
        }
        for (field, reference) in auth.secret_fields() {
            if reference.is_literal() {
                tracing::warn!(
                    connection = %name,
                    field,
                    "a secret is written literally in the flow file; store it with `weft secret set` and refer to it as secret:NAME"
                );
            }
        }
        if webhook_secret.as_ref().is_some_and(SecretRef::is_literal) {
            tracing::warn!(
                connection = %name,
                field = "webhook_secret",
                "a secret is written literally in the flow file; store it with `weft secret set` and refer to it as secret:NAME"
            );
        }
        let transport =
            Transport::new(Arc::new(policy), limits).map_err(|source| ConnectionError::Client {
                connection: name.clone(),
                source,
            })?;
        let auth = Authenticator::new(
            auth,
            placement,
            tenant.clone(),
            name.clone(),
            secrets.clone(),
        );
        Ok(Self {
            usage: None,
            inner: Arc::new(Inner {
                name,
                tenant,
                config,
                transport,
                auth,
                webhook_secret,
                secrets,
                budget,
            }),
        })
    }

    /// Counts the requests this connection sends (and their bytes) into `usage`.
    pub fn with_usage(mut self, usage: Arc<crate::Usage>) -> Self {
        self.usage = Some(usage);
        self
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The tenant that owns it.
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// The plugin config it was built with.
    pub fn config(&self) -> &serde_json::Value {
        &self.inner.config
    }

    /// Its egress policy.
    pub fn policy(&self) -> &EgressPolicy {
        self.inner.transport.policy()
    }

    /// Its limits.
    pub fn limits(&self) -> &HttpLimits {
        self.inner.transport.limits()
    }

    /// Its auth configuration.
    pub fn auth(&self) -> &AuthSpec {
        self.inner.auth.spec()
    }

    /// Sends a guest's request on behalf of this connection.
    ///
    /// In order: the request is validated (URL, headers the host owns, body size); its
    /// destination is checked against the egress policy before any credential is fetched; the
    /// credential is obtained (exchanging a token if needed) and attached; redirects are followed
    /// only within the policy, and the credential only to the original origin. If the upstream
    /// answers 401 to a renewable credential, it is renewed and the request retried once. The
    /// whole exchange, token fetch included, is bounded by the guest's timeout capped at
    /// [`HttpLimits::max_timeout`].
    pub async fn send(&self, req: Request) -> Result<Response, HttpError> {
        // Waiting for the budget is not part of the request's own time.
        if let Some(budget) = &self.inner.budget {
            budget.acquire().await;
        }
        let timeout = self.limits().effective_timeout(req.timeout);
        let target = reqwest::Url::parse(&req.url)
            .map(|u| host_for_messages(&u))
            .unwrap_or_else(|_| "the upstream".into());
        let method = req.method.clone();
        let bytes_out = req.body.as_ref().map_or(0, Vec::len) as u64;
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.send_within_deadline(req)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout(format!(
                "request to {target} on connection {:?} did not complete within {:.1} s",
                self.inner.name,
                timeout.as_secs_f64()
            ))),
        };
        if let Some(usage) = &self.usage {
            let bytes_in = result.as_ref().map_or(0, |r| r.body.len()) as u64;
            usage.add_request(bytes_out, bytes_in);
        }
        // Host only: paths and queries can carry identifiers or credentials.
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(resp) => tracing::debug!(
                connection = %self.inner.name, %method, host = %target,
                status = resp.status, bytes = resp.body.len(), elapsed_ms, "plugin http request"
            ),
            Err(err) => tracing::debug!(
                connection = %self.inner.name, %method, host = %target,
                error = %err, elapsed_ms, "plugin http request failed"
            ),
        }
        result
    }

    async fn send_within_deadline(&self, req: Request) -> Result<Response, HttpError> {
        let inner = &self.inner;
        let outgoing = http::validate(
            req,
            inner.transport.limits(),
            inner.auth.credential_header(),
            inner.auth.credential_query(),
        )?;
        inner
            .transport
            .policy()
            .check_url(&outgoing.url)
            .map_err(|d| HttpError::Denied(d.to_string()))?;
        let issued = inner.auth.credential(&inner.transport).await?;
        let (response, attached) = inner
            .transport
            .execute(
                outgoing.clone(),
                issued.as_ref().map(|i| &i.credential),
                &inner.auth.sensitive(),
            )
            .await?;
        let Some(issued) = issued.filter(|_| response.status == 401 && attached) else {
            return Ok(response);
        };
        if !inner.auth.spec().is_renewable() {
            // A static credential cannot be renewed, so no retry; but forget it, so the next
            // request re-reads the secret and picks up a `weft secret set` made meanwhile.
            inner.auth.invalidate(issued.generation).await;
            return Ok(response);
        }
        tracing::debug!(connection = %inner.name, "upstream answered 401; renewing the token and retrying once");
        inner.auth.invalidate(issued.generation).await;
        let renewed = inner.auth.credential(&inner.transport).await?;
        let (response, _) = inner
            .transport
            .execute(
                outgoing,
                renewed.as_ref().map(|i| &i.credential),
                &inner.auth.sensitive(),
            )
            .await?;
        Ok(response)
    }

    /// Non-secret fields of the connection's token response (Salesforce `instance_url`, Zoho
    /// `api_domain`, ...), exchanging a token first if none is cached. Fields named like a token,
    /// secret or signature are left out. Empty for auth kinds without a token endpoint.
    pub async fn token_info(&self) -> Result<Vec<(String, String)>, HttpError> {
        let timeout = self.limits().max_timeout;
        tokio::time::timeout(timeout, self.inner.auth.token_info(&self.inner.transport))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout(format!(
                    "token endpoint of connection {:?} did not answer within {:.1} s",
                    self.inner.name,
                    timeout.as_secs_f64()
                )))
            })
    }

    /// When the connection's current token expires (weft renews it before then): `None` for
    /// static credentials (api-key, basic, bearer) and tokens issued without `expires_in`.
    /// Exchanges a token first if none is cached.
    pub async fn token_expiry(&self) -> Result<Option<std::time::SystemTime>, HttpError> {
        let timeout = self.limits().max_timeout;
        tokio::time::timeout(timeout, self.inner.auth.token_expiry(&self.inner.transport))
            .await
            .unwrap_or_else(|_| {
                Err(HttpError::Timeout(format!(
                    "token endpoint of connection {:?} did not answer within {:.1} s",
                    self.inner.name,
                    timeout.as_secs_f64()
                )))
            })
    }

    /// Scrubs every secret value this connection has used from `text`.
    pub fn redact(&self, text: &str) -> String {
        self.inner.auth.redact(text)
    }

    /// Every secret value this connection has used so far, for callers that redact other text
    /// (e.g. plugin log lines).
    pub fn known_secrets(&self) -> Vec<Secret> {
        self.inner.auth.sensitive()
    }

    /// The webhook secret, resolved; used by [`Connection::hmac`].
    pub(crate) async fn webhook_secret(&self) -> Result<Secret, MacError> {
        let reference = self
            .inner
            .webhook_secret
            .as_ref()
            .ok_or_else(|| MacError::NoSecret {
                connection: self.inner.name.clone(),
            })?;
        let secret = self
            .inner
            .secrets
            .resolve(&self.inner.tenant, reference)
            .await
            .map_err(|source| MacError::Secret {
                connection: self.inner.name.clone(),
                source,
            })?;
        // Held by the run from now on, so redacted from everything a plugin says.
        self.inner.auth.remember(&secret);
        Ok(secret)
    }
}

/// The connections of one flow, by name. The runtime hands this to plugins; a plugin names the
/// connection a request belongs to and can reach nothing else.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    by_name: BTreeMap<String, Connection>,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a connection, returning the one it replaces, if any.
    pub fn insert(&mut self, connection: Connection) -> Option<Connection> {
        self.by_name
            .insert(connection.name().to_owned(), connection)
    }

    /// The connection named `name`.
    pub fn get(&self, name: &str) -> Option<&Connection> {
        self.by_name.get(name)
    }

    /// The connection named `name`, or the guest-visible error a plugin gets for naming one the
    /// flow does not have.
    pub fn require(&self, name: &str) -> Result<&Connection, HttpError> {
        self.get(name).ok_or_else(|| {
            HttpError::InvalidRequest(format!(
                "no connection named {name:?} in this flow (connections: {})",
                if self.by_name.is_empty() {
                    "none".to_owned()
                } else {
                    self.names().collect::<Vec<_>>().join(", ")
                }
            ))
        })
    }

    /// `text` without any secret value any of the connections has used so far: what a
    /// [`Redactor`](crate::Redactor) scrubs from plugin text.
    pub fn redact(&self, text: &str) -> String {
        self.by_name
            .values()
            .fold(text.to_owned(), |text, c| c.redact(&text))
    }

    /// The connections' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// How many connections there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl FromIterator<Connection> for Connections {
    fn from_iter<T: IntoIterator<Item = Connection>>(iter: T) -> Self {
        let mut c = Self::new();
        for connection in iter {
            c.insert(connection);
        }
        c
    }
}
