//! Microsoft Entra ID (Azure AD) token endpoints as Dataverse and Partner Center clients call
//! them: v2.0 with `scope={resource}/.default`, v1 with `resource=`, for client credentials,
//! authorization code, refresh token and (Partner Center's sample) the password grant.
//! Errors carry `AADSTS` codes in the shape MSAL parses.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::json as json_response;
use crate::clock::rfc3339;
use crate::server::Hub;
use crate::tokens::{AccessToken, Grant, RefreshToken};
use crate::vendor::Vendor;

/// One app registration in one tenant, granted access to one resource.
pub(crate) struct EntraApp {
    pub vendor: Vendor,
    pub tenant: &'static str,
    pub client_id: &'static str,
    pub client_secret: &'static str,
    /// Accepted resource identifiers (`https://org.crm.dynamics.com`, the emulator's base URL).
    pub resources: Vec<String>,
    pub username: &'static str,
    pub password: &'static str,
    pub lifetime_ms: i64,
}

fn aad_error(hub: &Hub, status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = hub.tokens.random_hex(16);
    let now = rfc3339(hub.now_ms());
    json_response(
        status,
        json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {now}"),
            "error_codes": [code], "timestamp": now, "trace_id": trace, "correlation_id": trace,
        }),
    )
}

impl EntraApp {
    fn resource_of(&self, p: &HashMap<String, String>, v2: bool) -> Option<String> {
        let wanted = if v2 {
            p.get("scope")?.split_whitespace().find_map(|s| {
                s.strip_suffix("/.default")
                    .or_else(|| s.strip_suffix(".default"))
                    .map(|r| r.trim_end_matches('/').to_string())
            })?
        } else {
            p.get("resource")?.trim_end_matches('/').to_string()
        };
        self.resources
            .iter()
            .find(|r| r.trim_end_matches('/').eq_ignore_ascii_case(&wanted))
            .cloned()
    }

    /// A JWT-shaped access token: clients decode it for `exp`; only this emulator validates it.
    fn access_token(&self, hub: &Hub, resource: &str, now_ms: i64, delegated: bool) -> String {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"typ": "JWT", "alg": "RS256", "kid": "weft-sandbox"}).to_string());
        let mut claims = json!({
            "aud": resource, "iss": format!("https://sts.windows.net/{}/", self.tenant), "iat": now_ms / 1_000,
            "nbf": now_ms / 1_000, "exp": (now_ms + self.lifetime_ms) / 1_000, "appid": self.client_id, "tid": self.tenant,
            "oid": "00000000-0000-4000-8000-0000000000aa", "ver": "1.0",
        });
        if delegated {
            claims["upn"] = json!(self.username);
            claims["scp"] = json!("user_impersonation");
        }
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!(
            "{header}.{payload}.{}",
            URL_SAFE_NO_PAD.encode(hub.tokens.random_hex(32))
        )
    }

    /// `POST /{tenant}/oauth2/v2.0/token` (`v2`) or `/{tenant}/oauth2/token`.
    pub(crate) fn token(
        &self,
        hub: &Hub,
        tenant: &str,
        v2: bool,
        p: &HashMap<String, String>,
    ) -> Response {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        let known_tenant = [self.tenant, "common", "organizations"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(tenant));
        if !known_tenant {
            return aad_error(
                hub,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                90002,
                &format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        if get("client_id") != self.client_id {
            return aad_error(
                hub,
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{}' was not found in the directory '{}'.",
                    get("client_id"),
                    self.tenant
                ),
            );
        }
        if get("client_secret") != self.client_secret {
            return aad_error(
                hub,
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            );
        }
        let now = hub.now_ms();
        let grant_type = get("grant_type");
        let (resource, delegated, refresh_of) = match grant_type {
            "refresh_token" => {
                let Some(stored) = hub
                    .tokens
                    .refresh(get("refresh_token"))
                    .filter(|r| r.grant.vendor == self.vendor && r.expires_ms > now)
                else {
                    return aad_error(
                        hub,
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        70008,
                        "The provided authorization code or refresh token has expired due to inactivity.",
                    );
                };
                (stored.grant.scope.clone(), true, Some(stored))
            }
            _ => {
                let Some(resource) = self.resource_of(p, v2) else {
                    return if v2 {
                        aad_error(
                            hub,
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            1002012,
                            &format!(
                                "The provided value for scope {} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
                                get("scope")
                            ),
                        )
                    } else {
                        aad_error(
                            hub,
                            StatusCode::BAD_REQUEST,
                            "invalid_resource",
                            500011,
                            &format!(
                                "The resource principal named {} was not found in the tenant named {}.",
                                get("resource"),
                                self.tenant
                            ),
                        )
                    };
                };
                match grant_type {
                    "client_credentials" => (resource, false, None),
                    "password" => {
                        if !get("username").eq_ignore_ascii_case(self.username)
                            || get("password") != self.password
                        {
                            return aad_error(
                                hub,
                                StatusCode::BAD_REQUEST,
                                "invalid_grant",
                                50126,
                                "Error validating credentials due to invalid username or password.",
                            );
                        }
                        (resource, true, None)
                    }
                    "authorization_code" => {
                        let valid = hub.tokens.take_code(get("code")).is_some_and(|c| {
                            c.grant.vendor == self.vendor
                                && c.expires_ms > now
                                && c.redirect_uri == get("redirect_uri")
                        });
                        if !valid {
                            return aad_error(
                                hub,
                                StatusCode::BAD_REQUEST,
                                "invalid_grant",
                                70000,
                                "The provided value for the 'code' parameter is not valid.",
                            );
                        }
                        (resource, true, None)
                    }
                    other => {
                        return aad_error(
                            hub,
                            StatusCode::BAD_REQUEST,
                            "unsupported_grant_type",
                            70003,
                            &format!("The app requested an unsupported grant type '{other}'."),
                        );
                    }
                }
            }
        };
        let grant = Grant {
            vendor: self.vendor,
            client_id: self.client_id.into(),
            user: if delegated {
                self.username.into()
            } else {
                self.client_id.into()
            },
            scope: resource.clone(),
        };
        // Entra issues a new refresh token on refresh but leaves the old one valid.
        let refresh = (delegated).then(|| {
            let r = format!("0.A{}", URL_SAFE_NO_PAD.encode(hub.tokens.random_hex(48)));
            let lifetime = refresh_of
                .as_ref()
                .map(|r| r.expires_ms)
                .unwrap_or(now + 90 * 86_400_000);
            hub.tokens.put_refresh(
                r.clone(),
                RefreshToken {
                    grant: grant.clone(),
                    expires_ms: lifetime,
                    minted: VecDeque::new(),
                },
            );
            r
        });
        let access = self.access_token(hub, &resource, now, delegated);
        hub.tokens.put_access(
            access.clone(),
            AccessToken {
                grant,
                expires_ms: now + self.lifetime_ms,
                refresh: refresh.clone(),
            },
        );
        let secs = self.lifetime_ms / 1_000;
        let mut body: Value = if v2 {
            json!({"token_type": "Bearer", "scope": format!("{resource}/.default"), "expires_in": secs, "ext_expires_in": secs, "access_token": access})
        } else {
            // The v1 endpoint writes numbers as strings.
            json!({
                "token_type": "Bearer", "expires_in": secs.to_string(), "ext_expires_in": secs.to_string(),
                "expires_on": ((now + self.lifetime_ms) / 1_000).to_string(), "not_before": (now / 1_000).to_string(),
                "resource": resource, "access_token": access,
            })
        };
        if let Some(r) = refresh {
            body["refresh_token"] = json!(r);
        }
        json_response(StatusCode::OK, body)
    }
}
