//! Turning a connector's `describe` and a flow's connection entry into the capability layer's
//! [`ConnectionSpec`]: which hosts the config implies and where the credential goes.

use weft_capabilities::{AuthSpec, ConnectionSpec, CredentialPlacement, DerivedHost, HostRule};

use crate::bindings::connector::exports::weft::plugin::connector_api as api;
use crate::plugin::ConnectorPlugin;

/// Why a connection entry does not fit its plugin.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error(
        "connection `{connection}`: plugin `{plugin}` does not support auth kind `{kind}`; it supports: {supported}"
    )]
    UnsupportedAuth {
        connection: String,
        plugin: String,
        kind: String,
        supported: String,
    },
    #[error("connection `{connection}`: plugin `{plugin}` reaches `{template}`, which {problem}")]
    Template {
        connection: String,
        plugin: String,
        template: String,
        // Boxed: the other variants are small, and a spec error is rare.
        problem: Box<TemplateError>,
    },
}

/// Why a host template cannot be expanded over a connection's config.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum TemplateError {
    #[error("needs `{0}` in the connection's config as a string")]
    Missing(String),
    #[error("needs `{key}` in the connection's config to be one of {allowed}, not `{value}`")]
    NotListed {
        key: String,
        value: String,
        allowed: String,
    },
    #[error(
        "cannot take `{key}` = `{value}` inside a host name: only letters, digits, `-` and `.` can be (a whole URL can be given where the template is only the placeholder)"
    )]
    NotAHostPart { key: String, value: String },
    #[error("is not a valid template: {0}")]
    Syntax(String),
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

/// A host template a connector declares, expanded over a connection's config.
///
/// Templates are how a plugin says which hosts a connection's config implies, so that hosts
/// come from what the operator wrote, never from the plugin alone:
///
/// - `{key}` is the config value `key` (a string or a number). Inside a host name
///   (`https://{subdomain}.zendesk.com`) the value may hold only letters, digits, `-` and `.`,
///   so it cannot end the host early; a template that is only the placeholder (`{base_url}`)
///   takes a whole URL.
/// - `{key:a=x,b=y}` maps the value: `a` becomes `x`, `b` becomes `y`; any other value is a
///   configuration error naming the ones allowed (a Zoho data-centre code to its domain).
/// - `{key?}` and `{key?:a=x}` are optional: when the config has no `key`, the template allows
///   nothing, instead of being an error.
///
/// A template without a placeholder names a host the config does not imply; the host allows
/// it only when the flow's `egress` lists it ([`Expansion::Literal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expansion {
    /// The host the config implies.
    Host(String),
    /// An optional placeholder's key is absent: nothing is allowed.
    Skipped,
    /// The template has no placeholder; the text as declared.
    Literal(String),
}

/// Expands `template` over `config`; see [`Expansion`].
pub fn expand_template(
    template: &str,
    config: &serde_json::Value,
) -> Result<Expansion, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut placeholders = 0;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            return Err(TemplateError::Syntax(format!(
                "`{{` at {} is never closed",
                template.len() - rest.len() + start
            )));
        };
        let inner = &rest[start + 1..start + len];
        let whole =
            start == 0 && start + len + 1 == rest.len() && placeholders == 0 && out.is_empty();
        placeholders += 1;
        let (key, map) = match inner.split_once(':') {
            Some((k, m)) => (k, Some(m)),
            None => (inner, None),
        };
        let (key, optional) = match key.strip_suffix('?') {
            Some(k) => (k, true),
            None => (key, false),
        };
        if key.is_empty() {
            return Err(TemplateError::Syntax("a placeholder has no key".into()));
        }
        let value = match config.get(key) {
            Some(serde_json::Value::String(s)) => s.trim_end_matches('/').to_owned(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            None | Some(serde_json::Value::Null) if optional => return Ok(Expansion::Skipped),
            _ => return Err(TemplateError::Missing(key.to_owned())),
        };
        let text = match map {
            None => value,
            Some(map) => {
                let pairs: Vec<(&str, &str)> = map
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(a, b)| (a.trim(), b.trim()))
                    .collect();
                match pairs
                    .iter()
                    .find(|(from, _)| from.eq_ignore_ascii_case(value.trim()))
                {
                    Some((_, to)) => (*to).to_owned(),
                    None => {
                        return Err(TemplateError::NotListed {
                            key: key.to_owned(),
                            value,
                            allowed: pairs
                                .iter()
                                .map(|(from, _)| *from)
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
            }
        };
        let host_part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        // A whole-URL placeholder (`{base_url}`) takes any URL; anything inside a host does not.
        let takes_url = whole && map.is_none();
        if !takes_url && !text.chars().all(host_part) {
            return Err(TemplateError::NotAHostPart {
                key: key.to_owned(),
                value: text,
            });
        }
        out.push_str(&text);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(if placeholders == 0 {
        Expansion::Literal(out)
    } else {
        Expansion::Host(out)
    })
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
        let method = info
            .auth
            .iter()
            .find(|m| auth_kind_name(m.kind) == auth.kind())
            .ok_or_else(|| SpecError::UnsupportedAuth {
                connection: name.to_owned(),
                plugin: info.name.clone(),
                kind: auth.kind().to_owned(),
                supported: info
                    .auth
                    .iter()
                    .map(|m| auth_kind_name(m.kind))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let placement = match &method.placement {
            api::CredentialPlacement::Header(h) => CredentialPlacement::header(&h.name, &h.value),
            api::CredentialPlacement::Query(q) => CredentialPlacement::query(q),
            // Basic auth always goes in `Authorization: Basic`, whatever the placement says.
            api::CredentialPlacement::Basic => CredentialPlacement::bearer(),
        };
        let mut derived_hosts = Vec::new();
        let mut declined_hosts = Vec::new();
        for template in &info.hosts {
            let expansion =
                expand_template(template, &config).map_err(|problem| SpecError::Template {
                    connection: name.to_owned(),
                    plugin: info.name.clone(),
                    template: template.clone(),
                    problem: Box::new(problem),
                })?;
            match expansion {
                Expansion::Host(host) => {
                    derived_hosts.push(DerivedHost::new(host, format!("template {template}")))
                }
                Expansion::Skipped => {}
                // Allowed only if the flow's egress names it: a plugin cannot add a host by
                // itself.
                Expansion::Literal(host) => declined_hosts.push(host),
            }
        }
        let mut spec = ConnectionSpec::new(name);
        spec.tenant = tenant.to_owned();
        spec.config = config;
        spec.auth = auth;
        spec.egress = egress;
        spec.derived_hosts = derived_hosts;
        spec.declined_hosts = declined_hosts;
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
    use super::{Expansion, TemplateError, expand_template};
    use serde_json::json;

    fn host(template: &str, config: serde_json::Value) -> String {
        match expand_template(template, &config).unwrap() {
            Expansion::Host(h) => h,
            other => panic!("{template}: {other:?}"),
        }
    }

    #[test]
    fn expands_placeholders_from_config() {
        let config =
            json!({"subdomain": "acme", "base_url": "http://127.0.0.1:8080/", "port": 443});
        assert_eq!(
            host("https://{subdomain}.zendesk.com", config.clone()),
            "https://acme.zendesk.com"
        );
        assert_eq!(host("{base_url}", config.clone()), "http://127.0.0.1:8080");
        assert_eq!(host("h:{port}", config), "h:443");
    }

    #[test]
    fn maps_a_code_to_its_domain() {
        let t = "https://www.{data_center:us=zohoapis.com,eu=zohoapis.eu,au=zohoapis.com.au}";
        assert_eq!(
            host(t, json!({"data_center": "EU"})),
            "https://www.zohoapis.eu"
        );
        assert_eq!(
            expand_template(t, &json!({"data_center": "xx"})).unwrap_err(),
            TemplateError::NotListed {
                key: "data_center".into(),
                value: "xx".into(),
                allowed: "us, eu, au".into()
            }
        );
    }

    #[test]
    fn names_the_missing_key_unless_optional() {
        assert_eq!(
            expand_template("https://{subdomain}.zendesk.com", &json!({})).unwrap_err(),
            TemplateError::Missing("subdomain".into())
        );
        assert_eq!(
            expand_template("{base_url?}", &json!({})).unwrap(),
            Expansion::Skipped
        );
    }

    #[test]
    fn a_value_cannot_end_the_host_early() {
        for evil in [
            "exfil.example/x",
            "exfil.example#",
            "exfil.example?",
            "x@exfil.example",
            "exfil.example:443",
        ] {
            let err = expand_template(
                "https://{subdomain}.zendesk.com",
                &json!({"subdomain": evil}),
            )
            .unwrap_err();
            assert!(
                matches!(err, TemplateError::NotAHostPart { .. }),
                "{evil}: {err}"
            );
        }
    }

    #[test]
    fn a_template_without_placeholders_is_a_literal() {
        assert_eq!(
            expand_template("https://exfil.example", &json!({})).unwrap(),
            Expansion::Literal("https://exfil.example".into())
        );
    }
}
