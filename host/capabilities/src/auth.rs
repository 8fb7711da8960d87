//! Credential injection: how a connection authenticates, and the host side of token exchange.
//!
//! Plugins never hold credentials (DESIGN decision 4). The flow file configures a connection's
//! [`AuthSpec`]; the plugin's `describe` says where the credential goes
//! ([`CredentialPlacement`]). The host resolves secrets, exchanges and caches tokens (one
//! exchange at a time per connection, renewed shortly before `expires_in` runs out, and once
//! more when the upstream answers 401), persists a rotated refresh token, and attaches the
//! credential to requests. Token endpoints are reached under the connection's egress policy like
//! any other request.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::http::{Credential, HttpError, Outgoing, Transport, host_for_messages};
use crate::secrets::{Secret, SecretRef, Secrets, redact};

/// The default lifetime of a JWT bearer assertion, in seconds. Salesforce accepts at most 3 min
/// of clock skew plus the assertion's validity; 5 minutes is the usual choice.
pub const DEFAULT_JWT_LIFETIME_SECS: u64 = 300;

/// How a connection authenticates, as written in the flow file's `auth = { kind = ..., ... }`.
/// Every secret value is a [`SecretRef`] (`secret:NAME`, `env:NAME` or, warned about, a literal).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum AuthSpec {
    /// No credential.
    #[default]
    #[serde(rename = "none")]
    None,
    /// A static API key, placed where the plugin says (header template or query parameter).
    #[serde(rename = "api-key")]
    ApiKey {
        /// The key.
        value: SecretRef,
    },
    /// HTTP basic auth; always sent as `Authorization: Basic base64(username:password)`.
    #[serde(rename = "basic")]
    Basic {
        /// The user name (not secret; e.g. Zendesk's `email/token`).
        username: String,
        /// The password or API token.
        password: SecretRef,
    },
    /// A static bearer token, placed where the plugin says.
    #[serde(rename = "bearer")]
    Bearer {
        /// The token.
        token: SecretRef,
    },
    /// OAuth2 refresh-token grant (RFC 6749 §6): a long-lived refresh token is exchanged for
    /// short-lived access tokens.
    #[serde(rename = "oauth2-refresh")]
    OAuth2Refresh {
        /// The token endpoint; its host must be on the connection's egress list.
        token_url: String,
        /// The OAuth client id.
        client_id: SecretRef,
        /// The OAuth client secret.
        client_secret: SecretRef,
        /// The refresh token. If the provider rotates it and this is `secret:NAME`, the new one
        /// is stored under the same name.
        refresh_token: SecretRef,
        /// Optional space-separated scopes.
        #[serde(default)]
        scope: Option<String>,
    },
    /// OAuth2 client-credentials grant (RFC 6749 §4.4).
    #[serde(rename = "oauth2-client-credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint; its host must be on the connection's egress list.
        token_url: String,
        /// The OAuth client id.
        client_id: SecretRef,
        /// The OAuth client secret.
        client_secret: SecretRef,
        /// Optional space-separated scopes.
        #[serde(default)]
        scope: Option<String>,
    },
    /// JWT bearer grant (RFC 7523) with an RS256 assertion, as Salesforce's server-to-server flow
    /// uses.
    #[serde(rename = "jwt-bearer")]
    JwtBearer {
        /// The token endpoint; its host must be on the connection's egress list.
        token_url: String,
        /// `iss`: the client id (Salesforce: the connected app's consumer key).
        issuer: String,
        /// `sub`: the user the token acts as.
        subject: String,
        /// `aud`: the authorization server (Salesforce: `https://login.salesforce.com`).
        audience: String,
        /// The RSA private key, PEM, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
        /// (`BEGIN RSA PRIVATE KEY`).
        private_key: SecretRef,
        /// The assertion's lifetime in seconds (default 300).
        #[serde(default)]
        lifetime: Option<u64>,
    },
}

impl AuthSpec {
    /// The flow-file name of this kind, e.g. `oauth2-refresh`.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthSpec::None => "none",
            AuthSpec::ApiKey { .. } => "api-key",
            AuthSpec::Basic { .. } => "basic",
            AuthSpec::Bearer { .. } => "bearer",
            AuthSpec::OAuth2Refresh { .. } => "oauth2-refresh",
            AuthSpec::OAuth2ClientCredentials { .. } => "oauth2-client-credentials",
            AuthSpec::JwtBearer { .. } => "jwt-bearer",
        }
    }

    /// The token endpoint, for kinds that exchange tokens.
    pub fn token_url(&self) -> Option<&str> {
        match self {
            AuthSpec::OAuth2Refresh { token_url, .. }
            | AuthSpec::OAuth2ClientCredentials { token_url, .. }
            | AuthSpec::JwtBearer { token_url, .. } => Some(token_url),
            _ => None,
        }
    }

    /// The fields holding secret values, by flow-file field name; used to warn about literals.
    pub fn secret_fields(&self) -> Vec<(&'static str, &SecretRef)> {
        match self {
            AuthSpec::None => vec![],
            AuthSpec::ApiKey { value } => vec![("value", value)],
            AuthSpec::Basic { password, .. } => vec![("password", password)],
            AuthSpec::Bearer { token } => vec![("token", token)],
            AuthSpec::OAuth2Refresh {
                client_secret,
                refresh_token,
                ..
            } => vec![
                ("client_secret", client_secret),
                ("refresh_token", refresh_token),
            ],
            AuthSpec::OAuth2ClientCredentials { client_secret, .. } => {
                vec![("client_secret", client_secret)]
            }
            AuthSpec::JwtBearer { private_key, .. } => vec![("private_key", private_key)],
        }
    }

    /// Every value this credential resolves, secrets and public ones (an OAuth client id given
    /// as `env:NAME`) alike: what must be set before it can be used.
    pub fn references(&self) -> Vec<&SecretRef> {
        let mut refs: Vec<&SecretRef> = self.secret_fields().into_iter().map(|(_, r)| r).collect();
        if let AuthSpec::OAuth2Refresh { client_id, .. }
        | AuthSpec::OAuth2ClientCredentials { client_id, .. } = self
        {
            refs.insert(0, client_id);
        }
        refs
    }

    /// Whether the credential can be renewed, so a 401 is worth one retry with a fresh one.
    pub fn is_renewable(&self) -> bool {
        matches!(
            self,
            AuthSpec::OAuth2Refresh { .. }
                | AuthSpec::OAuth2ClientCredentials { .. }
                | AuthSpec::JwtBearer { .. }
        )
    }
}

/// Where the credential goes on a request, as the plugin's `describe` declares it. Basic auth
/// ignores this and always uses `Authorization: Basic ...`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "in", rename_all = "kebab-case", deny_unknown_fields)]
pub enum CredentialPlacement {
    /// A header whose value is `template` with `{token}` replaced by the credential, e.g.
    /// `Authorization` / `Zoho-oauthtoken {token}`.
    Header {
        /// The header name.
        name: String,
        /// The value template; must contain `{token}`.
        template: String,
    },
    /// A query parameter carrying the raw credential.
    Query {
        /// The parameter name.
        name: String,
    },
}

impl Default for CredentialPlacement {
    /// `Authorization: Bearer {token}`, the OAuth2 default.
    fn default() -> Self {
        Self::bearer()
    }
}

impl CredentialPlacement {
    /// `Authorization: Bearer {token}`.
    pub fn bearer() -> Self {
        Self::header("Authorization", "Bearer {token}")
    }

    /// A header with a template containing `{token}`.
    pub fn header(name: impl Into<String>, template: impl Into<String>) -> Self {
        Self::Header {
            name: name.into(),
            template: template.into(),
        }
    }

    /// A query parameter.
    pub fn query(name: impl Into<String>) -> Self {
        Self::Query { name: name.into() }
    }

    /// Checks the header name and template; returns why it is unusable.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            CredentialPlacement::Header { name, template } => {
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a valid header name"))?;
                if !template.contains("{token}") {
                    return Err(format!(
                        "header template {template:?} does not contain {{token}}"
                    ));
                }
                Ok(())
            }
            CredentialPlacement::Query { name } if name.is_empty() => {
                Err("the query parameter name is empty".into())
            }
            CredentialPlacement::Query { .. } => Ok(()),
        }
    }
}

/// How many secret values a connection keeps for redaction. Each token renewal adds a few; the
/// bound keeps a long-running connection from growing the list (and redaction time) forever,
/// while still covering many past generations of tokens.
const MAX_REMEMBERED: usize = 64;

/// A credential ready to attach, with the generation it was issued in so a 401 invalidates only
/// the credential that failed, not a newer one another request already fetched.
#[derive(Clone)]
pub(crate) struct Issued {
    pub(crate) credential: Credential,
    pub(crate) generation: u64,
}

struct Current {
    issued: Issued,
    /// When to renew; `None` for static credentials and tokens without `expires_in`.
    renew_at: Option<Instant>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    generation: u64,
    /// The newest refresh token after a rotation, overriding the configured one.
    refresh_token: Option<Secret>,
    /// Non-secret fields of the last token response.
    info: Vec<(String, String)>,
    /// When the last token the endpoint issued expires, if it said (`expires_in`).
    expires_at: Option<std::time::SystemTime>,
    /// The process-wide cache entries the current token is kept under, forgotten with it on a
    /// 401.
    cache_keys: Vec<shared::Key>,
}

/// Tokens shared by every connection and process using the same credential.
mod shared;

/// One connection's credential source and cache.
pub(crate) struct Authenticator {
    spec: AuthSpec,
    placement: CredentialPlacement,
    tenant: String,
    connection: String,
    secrets: Secrets,
    /// A tokio mutex held across the exchange: concurrent requests wait for one exchange instead
    /// of each starting their own (single flight).
    state: Mutex<State>,
    /// Every secret value this connection has seen, for redaction.
    sensitive: std::sync::Mutex<Vec<Secret>>,
}

impl Authenticator {
    pub(crate) fn new(
        spec: AuthSpec,
        placement: CredentialPlacement,
        tenant: String,
        connection: String,
        secrets: Secrets,
    ) -> Self {
        Self {
            spec,
            placement,
            tenant,
            connection,
            secrets,
            state: Mutex::new(State::default()),
            sensitive: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn spec(&self) -> &AuthSpec {
        &self.spec
    }

    /// The header the credential goes in, which guests may not set.
    pub(crate) fn credential_header(&self) -> Option<&str> {
        match (&self.spec, &self.placement) {
            (AuthSpec::None, _) => None,
            (AuthSpec::Basic { .. }, _) => Some("authorization"),
            (_, CredentialPlacement::Header { name, .. }) => Some(name),
            (_, CredentialPlacement::Query { .. }) => None,
        }
    }

    /// The query parameter the credential goes in, which guests may not set.
    pub(crate) fn credential_query(&self) -> Option<&str> {
        match (&self.spec, &self.placement) {
            (AuthSpec::None | AuthSpec::Basic { .. }, _) => None,
            (_, CredentialPlacement::Query { name }) => Some(name),
            (_, CredentialPlacement::Header { .. }) => None,
        }
    }

    /// `text` without any secret value seen so far, scrubbed under the lock (no copy of the
    /// list per call: plugin log lines come through here).
    pub(crate) fn redact(&self, text: &str) -> String {
        redact(
            text,
            &self.sensitive.lock().expect("sensitive list poisoned"),
        )
    }

    /// Every secret value seen so far, for redaction.
    pub(crate) fn sensitive(&self) -> Vec<Secret> {
        self.sensitive
            .lock()
            .expect("sensitive list poisoned")
            .clone()
    }

    pub(crate) fn remember(&self, secret: &Secret) {
        let mut list = self.sensitive.lock().expect("sensitive list poisoned");
        // The value and the form in which it appears in a URL or form body.
        let encoded = Secret::new(
            url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect::<String>(),
        );
        for value in [secret.clone(), encoded] {
            // Most recently used last, so eviction drops expired tokens, not the long-lived
            // secrets that every exchange touches again.
            list.retain(|s| s != &value);
            list.push(value);
        }
        let excess = list.len().saturating_sub(MAX_REMEMBERED);
        list.drain(..excess);
    }

    /// The credential to attach, obtaining or renewing it if needed. `None` for `AuthSpec::None`.
    pub(crate) async fn credential(
        &self,
        transport: &Transport,
    ) -> Result<Option<Issued>, HttpError> {
        if self.spec == AuthSpec::None {
            return Ok(None);
        }
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && current.renew_at.is_none_or(|at| Instant::now() < at)
        {
            return Ok(Some(current.issued.clone()));
        }
        let (credential, renew_at) = self.obtain(&mut state, transport).await?;
        state.generation += 1;
        let issued = Issued {
            credential,
            generation: state.generation,
        };
        state.current = Some(Current {
            issued: issued.clone(),
            renew_at,
        });
        Ok(Some(issued))
    }

    /// Forgets the credential of `generation` after the upstream rejected it.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            state.current = None;
            for key in std::mem::take(&mut state.cache_keys) {
                shared::forget(&key);
                // Refused upstream: no other process may adopt it either.
                if let Err(e) = self
                    .secrets
                    .token_forget(&self.tenant, &shared::hex(&key))
                    .await
                {
                    tracing::warn!(connection = %self.connection, error = %e, "could not forget a refused token in the store; it is refused again and renewed there");
                }
            }
        }
    }

    /// Non-secret fields of the token response, exchanging a token first if none is cached.
    pub(crate) async fn token_info(
        &self,
        transport: &Transport,
    ) -> Result<Vec<(String, String)>, HttpError> {
        if !self.spec.is_renewable() {
            return Ok(Vec::new());
        }
        self.credential(transport).await?;
        Ok(self.state.lock().await.info.clone())
    }

    /// When the current token expires: `Ok(None)` for static credentials and tokens the
    /// endpoint gave no lifetime; exchanges a token first if none is cached.
    pub(crate) async fn token_expiry(
        &self,
        transport: &Transport,
    ) -> Result<Option<std::time::SystemTime>, HttpError> {
        if !self.spec.is_renewable() {
            return Ok(None);
        }
        self.credential(transport).await?;
        Ok(self.state.lock().await.expires_at)
    }

    async fn resolve(&self, field: &str, reference: &SecretRef) -> Result<Secret, HttpError> {
        let secret = self.resolve_public(field, reference).await?;
        self.remember(&secret);
        Ok(secret)
    }

    /// Resolves a value that is configured like a secret but is not one (an OAuth client id), so
    /// it is not added to the redaction list.
    async fn resolve_public(
        &self,
        field: &str,
        reference: &SecretRef,
    ) -> Result<Secret, HttpError> {
        let secret = self
            .secrets
            .resolve(&self.tenant, reference)
            .await
            .map_err(|e| {
                HttpError::Auth(format!(
                    "connection {:?} ({} auth, field {field}): {e}",
                    self.connection,
                    self.spec.kind()
                ))
            })?;
        Ok(secret)
    }

    fn place(&self, token: &Secret) -> Result<Credential, HttpError> {
        match &self.placement {
            CredentialPlacement::Header { name, template } => {
                let value = template.replace("{token}", token.expose());
                let header = self.header_value(&value)?;
                self.remember(&Secret::new(value));
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    HttpError::Auth(format!("credential header name {name:?} is invalid"))
                })?;
                Ok(Credential::Header(name, header))
            }
            CredentialPlacement::Query { name } => {
                Ok(Credential::Query(name.clone(), token.clone()))
            }
        }
    }

    fn header_value(&self, value: &str) -> Result<HeaderValue, HttpError> {
        let mut header = HeaderValue::from_str(value).map_err(|_| {
            HttpError::Auth(format!(
                "the credential of connection {:?} contains characters not allowed in a header",
                self.connection
            ))
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    async fn obtain(
        &self,
        state: &mut State,
        transport: &Transport,
    ) -> Result<(Credential, Option<Instant>), HttpError> {
        match &self.spec {
            AuthSpec::None => unreachable!("checked by the caller"),
            AuthSpec::ApiKey { value } => {
                Ok((self.place(&self.resolve("value", value).await?)?, None))
            }
            AuthSpec::Bearer { token } => {
                Ok((self.place(&self.resolve("token", token).await?)?, None))
            }
            AuthSpec::Basic { username, password } => {
                let password = self.resolve("password", password).await?;
                let encoded = Secret::new(B64.encode(format!("{username}:{}", password.expose())));
                self.remember(&encoded);
                let header = self.header_value(&format!("Basic {}", encoded.expose()))?;
                Ok((Credential::Header(AUTHORIZATION, header), None))
            }
            AuthSpec::OAuth2Refresh {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                scope,
            } => {
                let client_id = self.resolve_public("client_id", client_id).await?;
                let client_secret = self.resolve("client_secret", client_secret).await?;
                let current_refresh = match &state.refresh_token {
                    Some(rotated) => rotated.clone(),
                    None => self.resolve("refresh_token", refresh_token).await?,
                };
                let key_for = |refresh: &Secret| {
                    shared::key(&[
                        &self.tenant,
                        "oauth2-refresh",
                        token_url,
                        client_id.expose(),
                        client_secret.expose(),
                        refresh.expose(),
                        scope.as_deref().unwrap_or(""),
                    ])
                };
                let key = key_for(&current_refresh);
                if let Some(cached) = self.cached(&key).await {
                    return self.adopt(state, key, cached);
                }
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", current_refresh.expose().to_owned()),
                    ("client_id", client_id.expose().to_owned()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                if let Some(scope) = scope {
                    form.push(("scope", scope.clone()));
                }
                let token = self
                    .exchange(transport, token_url, "refresh_token", form)
                    .await?;
                let mut keys = vec![key];
                if let Some(new_refresh) = &token.refresh_token
                    && new_refresh != &current_refresh
                {
                    self.persist_rotated(refresh_token, new_refresh).await;
                    state.refresh_token = Some(new_refresh.clone());
                    // The next run resolves the rotated refresh token.
                    keys.push(key_for(new_refresh));
                }
                self.finish_shared(state, token, &keys).await
            }
            AuthSpec::OAuth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let client_id = self.resolve_public("client_id", client_id).await?;
                let client_secret = self.resolve("client_secret", client_secret).await?;
                let key = shared::key(&[
                    &self.tenant,
                    "oauth2-client-credentials",
                    token_url,
                    client_id.expose(),
                    client_secret.expose(),
                    scope.as_deref().unwrap_or(""),
                ]);
                if let Some(cached) = self.cached(&key).await {
                    return self.adopt(state, key, cached);
                }
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.expose().to_owned()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                if let Some(scope) = scope {
                    form.push(("scope", scope.clone()));
                }
                let token = self
                    .exchange(transport, token_url, "client_credentials", form)
                    .await?;
                self.finish_shared(state, token, &[key]).await
            }
            AuthSpec::JwtBearer {
                token_url,
                issuer,
                subject,
                audience,
                private_key,
                lifetime,
            } => {
                let key = self.resolve("private_key", private_key).await?;
                let cache_key = shared::key(&[
                    &self.tenant,
                    "jwt-bearer",
                    token_url,
                    issuer,
                    subject,
                    audience,
                    key.expose(),
                ]);
                if let Some(cached) = self.cached(&cache_key).await {
                    return self.adopt(state, cache_key, cached);
                }
                let lifetime = lifetime.unwrap_or(DEFAULT_JWT_LIFETIME_SECS);
                let assertion =
                    jwt_assertion(issuer, subject, audience, lifetime, &key).map_err(|reason| {
                        HttpError::Auth(format!(
                            "connection {:?}: cannot sign the JWT bearer assertion: {reason}",
                            self.connection
                        ))
                    })?;
                // The assertion is a credential in its own right until it expires.
                self.remember(&Secret::new(assertion.clone()));
                let form = vec![
                    ("grant_type", JWT_BEARER_GRANT.to_owned()),
                    ("assertion", assertion),
                ];
                let token = self
                    .exchange(transport, token_url, "jwt-bearer", form)
                    .await?;
                self.finish_shared(state, token, &[cache_key]).await
            }
        }
    }

    /// A token another connection of this process got for the same credential.
    fn adopt(
        &self,
        state: &mut State,
        key: shared::Key,
        cached: shared::Cached,
    ) -> Result<(Credential, Option<Instant>), HttpError> {
        self.remember(&cached.token);
        state.info = cached.info;
        state.expires_at = cached.expires_at;
        state.cache_keys = vec![key];
        Ok((self.place(&cached.token)?, cached.renew_at))
    }

    /// [`Self::finish`], then keeps the token for the other connections of this process and,
    /// sealed in the store, for every other process and run using the same credential.
    async fn finish_shared(
        &self,
        state: &mut State,
        token: TokenResponse,
        keys: &[shared::Key],
    ) -> Result<(Credential, Option<Instant>), HttpError> {
        let access = token.access_token.clone();
        let (credential, renew_at) = self.finish(state, token)?;
        let cached = shared::Cached {
            token: access,
            renew_at,
            expires_at: state.expires_at,
            info: state.info.clone(),
        };
        let envelope = shared::envelope(&cached);
        for key in keys {
            shared::put(*key, cached.clone());
            if let Err(e) = self
                .secrets
                .token_keep(&self.tenant, &shared::hex(key), &envelope)
                .await
            {
                // The token still works for this process; others will exchange their own.
                tracing::warn!(connection = %self.connection, error = %e, "could not keep the token in the store");
            }
        }
        state.cache_keys = keys.to_vec();
        Ok((credential, renew_at))
    }

    /// A token for `key` this process holds, or one another process kept in the store, unless
    /// it is due for renewal.
    async fn cached(&self, key: &shared::Key) -> Option<shared::Cached> {
        if let Some(cached) = shared::get(key) {
            return Some(cached);
        }
        let envelope = match self
            .secrets
            .token_load(&self.tenant, &shared::hex(key))
            .await
        {
            Ok(envelope) => envelope?,
            Err(e) => {
                tracing::warn!(connection = %self.connection, error = %e, "could not read kept tokens; exchanging a new one");
                return None;
            }
        };
        // `None` when it is due for renewal already.
        let cached = shared::from_envelope(&envelope)?;
        shared::put(*key, cached.clone());
        Some(cached)
    }

    fn finish(
        &self,
        state: &mut State,
        token: TokenResponse,
    ) -> Result<(Credential, Option<Instant>), HttpError> {
        state.info = token.info;
        state.expires_at = token
            .expires_in
            .map(|lifetime| std::time::SystemTime::now() + lifetime - token.received.elapsed());
        let renew_at = token.expires_in.map(|lifetime| {
            // Renew a little early so a request never leaves with a token that expires in
            // flight: a minute before, or halfway for tokens shorter than two minutes.
            let margin = (lifetime / 2).min(Duration::from_secs(60));
            token.received + lifetime - margin
        });
        Ok((self.place(&token.access_token)?, renew_at))
    }

    async fn persist_rotated(&self, reference: &SecretRef, new_refresh: &Secret) {
        match reference {
            SecretRef::Stored(name) => {
                match self.secrets.set(&self.tenant, name, new_refresh).await {
                    Ok(()) => tracing::info!(
                        connection = %self.connection,
                        secret = %name,
                        "stored the rotated refresh token"
                    ),
                    Err(e) => tracing::error!(
                        connection = %self.connection,
                        secret = %name,
                        error = %e,
                        "could not store the rotated refresh token; the old one may stop working after a restart"
                    ),
                }
            }
            other => tracing::warn!(
                connection = %self.connection,
                reference = %other,
                "the provider rotated the refresh token, but it is not a secret:NAME reference, so the new one is kept in memory only; use a stored secret to keep it across restarts"
            ),
        }
    }

    async fn exchange(
        &self,
        transport: &Transport,
        token_url: &str,
        grant: &str,
        form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, HttpError> {
        let url = reqwest::Url::parse(token_url).map_err(|e| {
            HttpError::Auth(format!(
                "connection {:?}: token_url {token_url:?} is not a valid URL: {e}",
                self.connection
            ))
        })?;
        let host = host_for_messages(&url);
        let body = Secret::new(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                .finish(),
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let sensitive = self.sensitive();
        let outgoing = Outgoing {
            method: Method::POST,
            url,
            headers,
            body: Some(body.expose().as_bytes().to_vec()),
            confined: true,
        };
        let (resp, _) = transport
            .execute(outgoing, None, &sensitive)
            .await
            .map_err(|e| match e {
                HttpError::Denied(m) => HttpError::Denied(format!("token endpoint: {m}")),
                HttpError::Timeout(m) => HttpError::Timeout(format!("token endpoint: {m}")),
                HttpError::TooLarge { limit } => HttpError::Auth(format!(
                    "token endpoint {host} sent a response over {limit} bytes"
                )),
                // Unreachable now is not refused: the caller's retries may get through.
                HttpError::Transport(m) => {
                    HttpError::Transport(format!("cannot reach the token endpoint {host}: {m}"))
                }
                HttpError::Auth(m) | HttpError::InvalidRequest(m) => {
                    HttpError::Auth(format!("cannot reach the token endpoint {host}: {m}"))
                }
            })?;
        let received = Instant::now();
        let describe_body = |body: &[u8]| {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            redact(&text, &self.sensitive())
        };
        // A busy or failing token endpoint is worth retrying; any other answer is a refusal.
        // Zoho says "too many requests" with a 400 when a refresh token mints more than ten
        // access tokens in ten minutes: that is throttling too.
        let throttled = resp.status == 400
            && String::from_utf8_lossy(&resp.body[..resp.body.len().min(2048)])
                .to_ascii_lowercase()
                .contains("too many requests");
        if resp.status == 429 || resp.status >= 500 || throttled {
            return Err(HttpError::Transport(format!(
                "token endpoint {host} answered HTTP {} to the {grant} grant for connection {:?} (try again later): {}",
                resp.status,
                self.connection,
                describe_body(&resp.body)
            )));
        }
        if !(200..300).contains(&resp.status) {
            return Err(HttpError::Auth(format!(
                "token endpoint {host} refused the {grant} grant for connection {:?} with HTTP {}: {}",
                self.connection,
                resp.status,
                describe_body(&resp.body)
            )));
        }
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&resp.body)
            .map_err(|e| {
            HttpError::Auth(format!(
                "token endpoint {host} did not answer with a JSON object ({e}): {}",
                describe_body(&resp.body)
            ))
        })?;
        let Some(access_token) = json.get("access_token").and_then(|v| v.as_str()) else {
            // Some providers (Zoho) answer 200 with {"error": "..."}.
            let error = json
                .get("error")
                .map(|v| v.to_string())
                .unwrap_or_else(|| "no access_token in the response".into());
            return Err(HttpError::Auth(format!(
                "token endpoint {host} gave no token for the {grant} grant of connection {:?}: {}",
                self.connection,
                redact(&error, &self.sensitive())
            )));
        };
        let access_token = Secret::new(access_token);
        self.remember(&access_token);
        let refresh_token = json
            .get("refresh_token")
            .and_then(|v| v.as_str())
            .map(Secret::new);
        if let Some(r) = &refresh_token {
            self.remember(r);
        }
        let expires_in = json.get("expires_in").and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let sensitive = self.sensitive();
        let info = json
            .iter()
            .filter(|(k, _)| !is_secret_field(k))
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), redact(&text, &sensitive))
            })
            .collect();
        tracing::debug!(connection = %self.connection, grant, host = %host, "obtained an access token");
        Ok(TokenResponse {
            access_token,
            refresh_token,
            expires_in: expires_in.map(Duration::from_secs),
            received,
            info,
        })
    }
}

struct TokenResponse {
    access_token: Secret,
    refresh_token: Option<Secret>,
    expires_in: Option<Duration>,
    received: Instant,
    info: Vec<(String, String)>,
}

/// Whether a token-response field must not be shown to plugins: the tokens themselves and
/// anything that looks like one.
pub fn is_secret_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("token") || lower.contains("secret") || lower.contains("signature")
}

/// The `grant_type` of the JWT bearer grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Builds and signs (RS256) a JWT bearer assertion: `{iss, sub, aud, iat, exp}`.
pub fn jwt_assertion(
    issuer: &str,
    subject: &str,
    audience: &str,
    lifetime_secs: u64,
    private_key_pem: &Secret,
) -> Result<String, String> {
    let key = rsa_key_from_pem(private_key_pem.expose())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?
        .as_secs();
    let header = B64URL.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_secs,
    });
    let claims = B64URL.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "RSA signing failed".to_owned())?;
    Ok(format!("{signing_input}.{}", B64URL.encode(signature)))
}

/// Parses an RSA private key from PEM, PKCS#8 or PKCS#1. Messages never include key material.
fn rsa_key_from_pem(pem: &str) -> Result<RsaKeyPair, String> {
    let (label, der) = pem_decode(pem)?;
    match label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("the PKCS#8 private key was rejected: {e}")),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
            .map_err(|e| format!("the PKCS#1 private key was rejected: {e}")),
        "ENCRYPTED PRIVATE KEY" => Err(
            "the private key is encrypted; store it unencrypted (it is encrypted at rest by weft)"
                .into(),
        ),
        other => Err(format!(
            "expected a PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY), found BEGIN {other}"
        )),
    }
}

/// Decodes the first PEM block: its label and DER bytes.
fn pem_decode(pem: &str) -> Result<(String, zeroize::Zeroizing<Vec<u8>>), String> {
    let start = pem
        .find("-----BEGIN ")
        .ok_or("no PEM block (-----BEGIN ...-----) found")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("malformed PEM header")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or("PEM block has no matching END line")?;
    let body: String = rest[body_start..body_end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = B64
        .decode(body.as_bytes())
        .map_err(|_| "PEM body is not valid base64".to_owned())?;
    Ok((label, zeroize::Zeroizing::new(der)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auth_specs_from_json_and_refuses_unknown_fields() {
        let spec: AuthSpec = serde_json::from_value(serde_json::json!({
            "kind": "oauth2-refresh",
            "token_url": "https://accounts.zoho.jp/oauth/v2/token",
            "client_id": "env:ZOHO_CLIENT_ID",
            "client_secret": "secret:zoho_client_secret",
            "refresh_token": "secret:zoho_refresh",
        }))
        .unwrap();
        assert_eq!(spec.kind(), "oauth2-refresh");
        assert!(spec.is_renewable());
        let err = serde_json::from_value::<AuthSpec>(serde_json::json!({
            "kind": "bearer", "token": "secret:t", "tokn": "x"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("tokn"), "{err}");
        let none: AuthSpec = serde_json::from_value(serde_json::json!({"kind": "none"})).unwrap();
        assert_eq!(none, AuthSpec::None);
    }

    #[test]
    fn secret_field_names_are_recognized() {
        for name in [
            "access_token",
            "refresh_token",
            "id_token",
            "client_secret",
            "signature",
            "Token_Type",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["instance_url", "api_domain", "expires_in", "scope", "id"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn placement_templates_need_the_token() {
        assert!(
            CredentialPlacement::header("Authorization", "Zoho-oauthtoken {token}")
                .validate()
                .is_ok()
        );
        assert!(
            CredentialPlacement::header("Authorization", "Bearer")
                .validate()
                .is_err()
        );
        assert!(
            CredentialPlacement::header("Bad Header", "{token}")
                .validate()
                .is_err()
        );
        assert!(CredentialPlacement::query("").validate().is_err());
    }
}
