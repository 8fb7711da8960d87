//! The third-party example under `examples/` builds against the SDK and loads.

use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::auth_kind_name;
use weft_tests::*;

#[tokio::test]
async fn third_party_example_loads_and_derives_its_host_from_config() {
    let rt = runtime(|_| {});
    let plugin = connector(&rt, "acme_helpdesk_connector").await;
    let info = plugin.info();
    assert_eq!(info.name, "acme-helpdesk");
    assert_eq!(info.streams[0].name, "tickets");
    assert_eq!(info.streams[0].cursor_field.as_deref(), Some("updated_at"));
    assert_eq!(
        info.auth
            .iter()
            .map(|m| auth_kind_name(m.kind))
            .collect::<Vec<_>>(),
        ["api-key"]
    );

    let auth = AuthSpec::ApiKey {
        value: SecretRef::Literal(Secret::new("k")),
    };
    let spec = plugin
        .connection_spec(
            "acme",
            "default",
            serde_json::json!({"account": "globex"}),
            auth,
            vec![],
        )
        .unwrap();
    assert_eq!(
        spec.derived_hosts
            .iter()
            .map(|h| h.host.as_str())
            .collect::<Vec<_>>(),
        ["https://globex.acmehelpdesk.example"]
    );

    let err = plugin
        .connection_spec(
            "acme",
            "default",
            serde_json::json!({}),
            AuthSpec::None,
            vec![],
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "connection `acme`: plugin `acme-helpdesk` does not support auth kind `none`; it supports: api-key"
    );
}
