//! Turning a connector's `describe` and a flow's connection entry into the capability layer's
//! [`ConnectionSpec`]: which hosts the config implies and where the credential goes.

use weft_capabilities::{AuthSpec, ConnectionSpec, CredentialPlacement, HostRule};

use crate::bindings::connector::exports::weft::plugin::connector_api as api;
use crate::plugin::ConnectorPlugin;

/// Why a connection entry does not fit its plugin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "connection `{connection}`: plugin `{plugin}` does not support auth kind `{kind}`; it supports: {supported}"
    )]
    UnsupportedAuth { connection: String, plugin: String, kind: String, supported: String },
    #[error(
        "connection `{connection}`: plugin `{plugin}` reaches `{template}`, which needs `{key}` in the connection's config as a string"
    )]
    MissingConfig { connection: String, plugin: String, template: String, key: String },
}

/// The kind name the flow file uses for `kind`.
pub fn auth_kind_name(kind: api::AuthKind) -> &'static str {
    match kind {
        api::AuthKind::None => "none",
        api::AuthKind::ApiKey => "api-key",
        api::AuthKind::Basic => "basic",
        api::AuthKind::Bearer => "bearer",
        api::AuthKind::Oauth2Refresh => "oauth2-refresh",
        api::AuthKind::Oauth2ClientCredentials => "oauth2-client-credentials",
        api::AuthKind::JwtBearer => "jwt-bearer",
    }
}

/// Fills `{key}` placeholders of `template` from the string (or number) fields of `config`.
pub fn expand_template(template: &str, config: &serde_json::Value) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &rest[start + 1..start + len];
        match config.get(key) {
            Some(serde_json::Value::String(s)) => out.push_str(s.trim_end_matches('/')),
            Some(serde_json::Value::Number(n)) => out.push_str(&n.to_string()),
            _ => return Err(key.to_owned()),
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ConnectorPlugin {
    /// The capability spec for connection `name` of this plugin, from the flow's entry: the
    /// hosts the plugin derives from `config`, the credential placement the plugin asks for
    /// the chosen auth kind, and the flow's explicit egress rules.
    pub fn connection_spec(
        &self,
        name: &str,
        tenant: &str,
        config: serde_json::Value,
        auth: AuthSpec,
        egress: Vec<HostRule>,
    ) -> Result<ConnectionSpec, SpecError> {
        let info = self.info();
        let method = info.auth.iter().find(|m| auth_kind_name(m.kind) == auth.kind()).ok_or_else(|| {
            SpecError::UnsupportedAuth {
                connection: name.to_owned(),
                plugin: info.name.clone(),
                kind: auth.kind().to_owned(),
                supported: info.auth.iter().map(|m| auth_kind_name(m.kind)).collect::<Vec<_>>().join(", "),
            }
        })?;
        let placement = match &method.placement {
            api::CredentialPlacement::Header(h) => CredentialPlacement::header(&h.name, &h.value),
            api::CredentialPlacement::Query(q) => CredentialPlacement::query(q),
            // Basic auth always goes in `Authorization: Basic`, whatever the placement says.
            api::CredentialPlacement::Basic => CredentialPlacement::bearer(),
        };
        let derived_hosts = info
            .hosts
            .iter()
            .map(|template| {
                expand_template(template, &config).map_err(|key| SpecError::MissingConfig {
                    connection: name.to_owned(),
                    plugin: info.name.clone(),
                    template: template.clone(),
                    key,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut spec = ConnectionSpec::new(name);
        spec.tenant = tenant.to_owned();
        spec.config = config;
        spec.auth = auth;
        spec.egress = egress;
        spec.derived_hosts = derived_hosts;
        spec.placement = placement;
        spec.rate = info.rate_limit.map(|r| weft_capabilities::RateBudget {
            requests: r.requests,
            per: std::time::Duration::from_millis(r.per_ms),
        });
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::expand_template;
    use serde_json::json;

    #[test]
    fn expands_placeholders_from_config() {
        let config = json!({"subdomain": "acme", "base_url": "http://127.0.0.1:8080/", "port": 443});
        assert_eq!(expand_template("https://{subdomain}.zendesk.com", &config).unwrap(), "https://acme.zendesk.com");
        assert_eq!(expand_template("{base_url}/oauth/token", &config).unwrap(), "http://127.0.0.1:8080/oauth/token");
        assert_eq!(expand_template("h:{port}", &config).unwrap(), "h:443");
    }

    #[test]
    fn names_the_missing_key() {
        assert_eq!(expand_template("https://{subdomain}.zendesk.com", &json!({})).unwrap_err(), "subdomain");
    }
}
