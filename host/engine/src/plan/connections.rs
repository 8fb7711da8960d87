//! Binding each connection of a flow to its connector and to the capability spec its calls
//! run under: config and auth with variables filled in, egress rules, webhook secret, rate.

use std::collections::{BTreeMap, BTreeSet};

use toml::Spanned;
use weft_capabilities::{AuthSpec, HostRule};
use weft_flow::Diagnostic;
use weft_flow::model::{EgressRule, Environment, FlowFile};
use weft_runtime::SharedPlugin;

use super::variables::{Variables, json, substitute_table, substitute_text};
use super::{BoundConnection, DATASET, Loader, at};

/// The flow's connections bound to their connectors, and the names of those that are weft's
/// own datasets.
pub(super) async fn bind(
    file: &FlowFile,
    env: Option<&Environment>,
    variables: &Variables,
    tenant: &str,
    loader: &mut Loader<'_>,
    out: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, Box<BoundConnection>>, BTreeSet<String>) {
    let mut connections = BTreeMap::new();
    let mut datasets = BTreeSet::new();
    for (name, connection) in &file.connections {
        let c = connection.get_ref();
        if loader.name(&c.plugin) == DATASET {
            datasets.insert(name.get_ref().to_string());
            continue;
        }
        let connector = match loader.get(&c.plugin).await {
            Ok(SharedPlugin::Connector(p)) => p,
            Ok(SharedPlugin::Transform(_)) => {
                out.push(Diagnostic::new(
                    format!(
                        "plugin `{}` is a transform, not a connector",
                        loader.name(&c.plugin)
                    ),
                    at(&c.plugin),
                ));
                continue;
            }
            Err(d) => {
                out.push(d);
                continue;
            }
        };
        let overrides = env.and_then(|e| {
            e.connections
                .iter()
                .find(|(k, _)| k.get_ref() == name.get_ref())
                .map(|(_, v)| v.get_ref())
        });
        let config_table = overrides
            .and_then(|o| o.config.as_ref())
            .or(c.config.as_ref());
        let auth_table = overrides.and_then(|o| o.auth.as_ref()).or(c.auth.as_ref());
        let egress: &[Spanned<EgressRule>] = overrides
            .and_then(|o| o.egress.as_deref())
            .unwrap_or(&c.egress);
        let config = json(config_table, variables);
        let auth = match auth_table {
            None => AuthSpec::None,
            Some(table) => {
                let mut t = table.get_ref().clone();
                substitute_table(&mut t, variables);
                match toml::Value::Table(t).try_into::<AuthSpec>() {
                    Ok(a) => a,
                    Err(e) => {
                        out.push(Diagnostic::new(
                            format!(
                                "connection `{}` auth: {}",
                                name.get_ref(),
                                e.message().trim()
                            ),
                            at(table),
                        ));
                        continue;
                    }
                }
            }
        };
        let mut rules = Vec::new();
        for rule in egress {
            let r = rule.get_ref();
            match HostRule::parse(&substitute_text(r.host.get_ref(), variables)) {
                Ok(h) => rules.push(
                    h.allow_http(r.allow_http)
                        .allow_private(r.allow_private)
                        .credential(r.credential),
                ),
                Err(e) => out.push(Diagnostic::new(e.to_string(), at(&r.host))),
            }
        }
        match connector.connection_spec(
            name.get_ref().as_str(),
            tenant,
            config.clone(),
            auth,
            rules,
        ) {
            Ok(mut spec) => {
                if let Some(secret) = &c.webhook_secret {
                    spec.webhook_secret = Some(weft_capabilities::SecretRef::from(
                        substitute_text(secret.get_ref(), variables),
                    ));
                }
                if let Some(rate) = &c.rate {
                    let r = rate.get_ref();
                    if r.requests == 0 {
                        out.push(Diagnostic::new(
                            "a rate of zero requests would never send anything",
                            at(rate),
                        ));
                    }
                    spec.rate = Some(weft_capabilities::RateBudget {
                        requests: r.requests,
                        per: r.per.0,
                    });
                }
                connections.insert(
                    name.get_ref().to_string(),
                    // Boxed: a map's node holds room for eleven entries, and a plan has one
                    // or two; a server holds thousands of plans.
                    Box::new(BoundConnection {
                        plugin: connector,
                        config,
                        spec,
                    }),
                );
            }
            Err(e) => out.push(Diagnostic::new(
                e.to_string(),
                Some(config_table.map_or(c.plugin.span(), |t| t.span())),
            )),
        }
    }

    (connections, datasets)
}
