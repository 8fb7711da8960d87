//! Where a connector's checks send their requests: an emulator of the sandbox started for
//! them, with its demo data and credential, or the URL of a running API.

use std::str::FromStr;

use weft_capabilities::{AuthSpec, HostRule, Secret, SecretRef};
use weft_runtime::{AuthKind, ConnectorPlugin};
use weft_sandbox::{Sandbox, SandboxConfig, Vendor};

/// Where the upstream is: `sandbox:VENDOR` (an emulator this process starts, with its demo
/// data and credentials) or the base URL of a running API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    Sandbox(Vendor),
    Url(String),
}

impl FromStr for Against {
    type Err = String;

    fn from_str(s: &str) -> Result<Against, String> {
        if let Some(slug) = s.strip_prefix("sandbox:") {
            let vendors = || {
                Vendor::ALL
                    .iter()
                    .map(|v| v.slug())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Vendor::from_slug(slug)
                .map(Against::Sandbox)
                .ok_or_else(|| {
                    format!("the sandbox has no `{slug}` emulator; it has {}", vendors())
                });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Against::Url(s.trim_end_matches('/').to_owned()));
        }
        Err(format!(
            "`{s}` is neither sandbox:VENDOR nor an http(s) URL; e.g. sandbox:zendesk or http://127.0.0.1:8080"
        ))
    }
}

impl std::fmt::Display for Against {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Against::Sandbox(vendor) => write!(f, "sandbox:{}", vendor.slug()),
            Against::Url(url) => f.write_str(url),
        }
    }
}

/// The upstream while the checks run: the sandbox started for them, or the author's URL.
pub struct Upstream {
    sandbox: Option<(Sandbox, Vendor)>,
    base_url: String,
}

impl Upstream {
    /// Starts the emulator for `sandbox:VENDOR` (its demo data, its own ports); a URL is used
    /// as it is.
    pub async fn start(against: &Against) -> Result<Upstream, String> {
        match against {
            Against::Url(url) => Ok(Upstream {
                sandbox: None,
                base_url: url.clone(),
            }),
            Against::Sandbox(vendor) => {
                // Unthrottled: the checks pin behaviour, not pace; throttling is
                // injected on purpose by its own check.
                let sandbox = Sandbox::start(SandboxConfig::default().unthrottled())
                    .await
                    .map_err(|e| format!("starting the sandbox: {e}"))?;
                let base_url = sandbox
                    .vendor(*vendor)
                    .map(|h| h.base_url().to_owned())
                    .ok_or_else(|| {
                        format!("the sandbox started without its {vendor:?} emulator")
                    })?;
                Ok(Upstream {
                    sandbox: Some((sandbox, *vendor)),
                    base_url,
                })
            }
        }
    }

    /// What `{url}` in a connection's config stands for: `http://127.0.0.1:PORT` of the
    /// emulator, or the URL given.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The emulator's demo credential in the first form the plugin declares that the vendor
    /// offers; `None` for a URL, or when the vendor has no credential of those kinds.
    pub fn demo_auth(&self, plugin: &ConnectorPlugin) -> Option<AuthSpec> {
        let (sandbox, vendor) = self.sandbox.as_ref()?;
        let c = sandbox.vendor(*vendor)?.credentials();
        let literal = |s: &str| SecretRef::Literal(Secret::new(s));
        let token_url = c.extra.get("token_url").cloned();
        plugin
            .info()
            .auth
            .iter()
            .find_map(|method| match method.kind {
                AuthKind::None => Some(AuthSpec::None),
                AuthKind::Basic => {
                    let password = c
                        .api_token
                        .clone()
                        .or_else(|| c.extra.get("password").cloned())?;
                    let username = c
                        .extra
                        .get("basic_auth_user")
                        .cloned()
                        .unwrap_or_else(|| c.username.clone());
                    Some(AuthSpec::Basic {
                        username,
                        password: literal(&password),
                    })
                }
                AuthKind::ApiKey => c
                    .api_token
                    .as_deref()
                    .map(|t| AuthSpec::ApiKey { value: literal(t) }),
                AuthKind::Bearer => c
                    .api_token
                    .as_deref()
                    .map(|t| AuthSpec::Bearer { token: literal(t) }),
                AuthKind::Oauth2Refresh => Some(AuthSpec::OAuth2Refresh {
                    token_url: token_url.clone()?,
                    client_id: literal(&c.client_id),
                    client_secret: literal(&c.client_secret),
                    refresh_token: literal(c.refresh_token.as_deref()?),
                    scope: None,
                }),
                AuthKind::Oauth2ClientCredentials => Some(AuthSpec::OAuth2ClientCredentials {
                    token_url: token_url.clone()?,
                    client_id: literal(&c.client_id),
                    client_secret: literal(&c.client_secret),
                    scope: c.extra.get("scope").cloned(),
                }),
                AuthKind::JwtBearer => None,
            })
    }

    /// Stops the emulator, if one was started.
    pub async fn shutdown(self) {
        if let Some((sandbox, _)) = self.sandbox {
            sandbox.shutdown().await;
        }
    }
}

impl Upstream {
    /// The emulator and its vendor, when the checks started one.
    pub(crate) fn sandbox(&self) -> Option<(&Sandbox, Vendor)> {
        self.sandbox
            .as_ref()
            .map(|(sandbox, vendor)| (sandbox, *vendor))
    }
}

/// The egress rule for the upstream the author pointed at: that host and port exactly, over
/// http too, at a private address too (the author chose it; nothing else is allowed).
pub(crate) fn rule_for(url: &str) -> Result<HostRule, String> {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    HostRule::parse(authority)
        .map(|r| r.allow_http(true).allow_private(true))
        .map_err(|e| format!("{url} cannot be allowed as an upstream: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn against_names_a_sandbox_vendor_or_a_url() {
        assert_eq!(
            "sandbox:zendesk".parse::<Against>(),
            Ok(Against::Sandbox(Vendor::Zendesk))
        );
        assert_eq!(
            "http://127.0.0.1:9/".parse::<Against>(),
            Ok(Against::Url("http://127.0.0.1:9".into()))
        );
        let unknown = "sandbox:jira".parse::<Against>().unwrap_err();
        assert!(
            unknown.contains("no `jira` emulator") && unknown.contains("zendesk"),
            "{unknown}"
        );
        assert!("ftp://x".parse::<Against>().is_err());
    }
}
