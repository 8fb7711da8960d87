//! The scenarios of `SCENARIOS.md`, each run from its flows under `examples/` against a fresh
//! sandbox and checked through the vendors' own APIs.

mod conversation_sync;
mod partner_center_salesforce;
mod salesforce_hubspot;
mod zendesk_zoho;
mod zoho_customer_success;

/// Zoho CRM's API called directly (not through the connector), to set up and check records.
/// One access token for all calls: Zoho mints at most 10 a refresh token per 10 minutes.
pub mod zoho {
    use serde_json::{Value, json};
    use weft_sandbox::{Sandbox, Vendor};

    pub struct Api {
        base: String,
        token: String,
        client: reqwest::Client,
    }

    impl Api {
        pub async fn new(sb: &Sandbox) -> Api {
            let base = sb
                .vendor(Vendor::Zoho)
                .expect("zoho runs")
                .base_url()
                .to_owned();
            let token = weft_tests::vendor::refreshed_token(
                sb,
                Vendor::Zoho,
                &format!("{base}/oauth/v2/token"),
            )
            .await;
            let client = reqwest::Client::new();
            Api {
                base,
                token,
                client,
            }
        }

        pub async fn call(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.base))
                .header("Authorization", format!("Zoho-oauthtoken {}", self.token));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let resp = request.send().await.expect("the emulator answers");
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }

        /// Creates one record and returns its id.
        pub async fn create(&self, module: &str, record: Value) -> String {
            let (status, answer) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/crm/v7/{module}"),
                    Some(json!({"data": [record]})),
                )
                .await;
            assert_eq!(status, 201, "{answer}");
            answer["data"][0]["details"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("an id: {answer}"))
                .to_owned()
        }

        /// Every record of `module` with `fields`, following page tokens.
        pub async fn list(&self, module: &str, fields: &str) -> Vec<Value> {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let mut path = format!(
                    "/crm/v7/{module}?fields={fields}&per_page=200&sort_by=id&sort_order=asc"
                );
                if let Some(t) = &token {
                    path.push_str(&format!("&page_token={t}"));
                }
                let (status, answer) = self.call(reqwest::Method::GET, &path, None).await;
                if status == 204 {
                    return out;
                }
                assert_eq!(status, 200, "{answer}");
                out.extend(answer["data"].as_array().cloned().unwrap_or_default());
                match answer["info"]["next_page_token"].as_str() {
                    Some(t) if answer["info"]["more_records"] == true => token = Some(t.to_owned()),
                    _ => return out,
                }
            }
        }
    }
}

/// Zendesk's API called directly, with the sandbox's agent API token.
pub mod zendesk {
    use serde_json::Value;
    use weft_sandbox::{Sandbox, Vendor};

    pub struct Api {
        base: String,
        user: String,
        token: String,
        client: reqwest::Client,
    }

    impl Api {
        pub fn new(sb: &Sandbox) -> Api {
            let zendesk = sb.vendor(Vendor::Zendesk).expect("zendesk runs");
            let c = zendesk.credentials();
            Api {
                base: zendesk.base_url().to_owned(),
                user: format!("{}/token", c.username),
                token: c.api_token.expect("an API token"),
                client: reqwest::Client::new(),
            }
        }

        pub async fn call(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.base))
                .basic_auth(&self.user, Some(&self.token));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let resp = request.send().await.expect("the emulator answers");
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }

        /// Every record of `kind` (`users`, `organizations`, `tickets`), following cursors.
        pub async fn list(&self, kind: &str) -> Vec<Value> {
            let mut out = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut path = format!("/api/v2/{kind}.json?page[size]=100");
                if let Some(a) = &after {
                    path.push_str(&format!("&page[after]={a}"));
                }
                let (status, answer) = self.call(reqwest::Method::GET, &path, None).await;
                assert_eq!(status, 200, "{answer}");
                out.extend(answer[kind].as_array().cloned().unwrap_or_default());
                match answer["meta"]["after_cursor"].as_str() {
                    Some(a) if answer["meta"]["has_more"] == true => after = Some(a.to_owned()),
                    _ => return out,
                }
            }
        }
    }
}
