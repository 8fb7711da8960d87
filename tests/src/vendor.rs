//! Sessions on the sandbox's vendor APIs for tests that set up or check records upstream, not
//! through weft: each logs in the vendor's own way with the sandbox's published credentials.

use serde_json::Value;
use weft_capabilities::Secret;
use weft_sandbox::{Sandbox, Vendor};

/// A Salesforce session (JWT bearer with the sandbox's demo key): the access token and the REST
/// root (`{instance}/services/data/v66.0`).
pub async fn salesforce_session(sandbox: &Sandbox) -> (String, String) {
    let c = sandbox
        .vendor(Vendor::Salesforce)
        .expect("salesforce runs")
        .credentials();
    let key = Secret::new(c.extra["jwt_private_key_pem"].clone());
    let assertion = weft_capabilities::auth::jwt_assertion(
        &c.client_id,
        &c.username,
        &c.extra["jwt_audience"],
        300,
        &key,
    )
    .expect("a JWT");
    let form = [
        ("grant_type", weft_capabilities::auth::JWT_BEARER_GRANT),
        ("assertion", assertion.as_str()),
    ];
    let token = token(&c.extra["token_url"], &form).await;
    (
        text(&token, "access_token"),
        format!("{}/services/data/v66.0", text(&token, "instance_url")),
    )
}

/// An access token from a vendor's OAuth refresh-token grant (Zoho, Partner Center).
pub async fn refreshed_token(sandbox: &Sandbox, vendor: Vendor, token_url: &str) -> String {
    let c = sandbox
        .vendor(vendor)
        .expect("the vendor runs")
        .credentials();
    let refresh = c.refresh_token.clone().expect("a demo refresh token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    text(&token(token_url, &form).await, "access_token")
}

/// An access token from Dataverse's Entra ID client-credentials grant, and the service root.
pub async fn dataverse_session(sandbox: &Sandbox) -> (String, String) {
    let c = sandbox
        .vendor(Vendor::Dataverse)
        .expect("dataverse runs")
        .credentials();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
        ("scope", c.extra["scope"].as_str()),
    ];
    (
        text(&token(&c.extra["token_url"], &form).await, "access_token"),
        c.extra["service_root"].clone(),
    )
}

async fn token(url: &str, form: &[(&str, &str)]) -> Value {
    reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .expect("the token endpoint answers")
        .json()
        .await
        .expect("a JSON token answer")
}

fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}
