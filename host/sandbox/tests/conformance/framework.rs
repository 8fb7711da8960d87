//! Behaviour shared by every emulator: admin API, request log, fault injection, ports, data.

use serde_json::{Value, json};
use weft_sandbox::{
    DemoData, DemoSize, FaultConfig, PortPlan, Sandbox, SandboxConfig, SandboxError, Vendor,
};

use crate::support::{admin_get, admin_post, client, header_names, raw_response_head, start};
use crate::zoho::access_token;

#[tokio::test]
async fn every_emulator_gets_its_own_loopback_port_and_credentials() {
    let sb = start(SandboxConfig::default()).await;
    let urls: Vec<String> = sb.vendors().map(|v| v.base_url().to_string()).collect();
    assert!(!urls.is_empty());
    for u in &urls {
        assert!(u.starts_with("http://127.0.0.1:"), "{u}");
    }
    let mut unique = urls.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), urls.len());
    let zoho = sb.vendor(Vendor::Zoho).unwrap();
    assert!(zoho.credentials().client_id.starts_with("1000."));
    sb.shutdown().await;
}

#[tokio::test]
async fn credentials_table_lists_each_emulator_url_and_secret() {
    let sb = start(SandboxConfig::default()).await;
    let table = weft_sandbox::render_table(&sb);
    for v in sb.vendors() {
        assert!(table.contains(v.base_url()), "{table}");
        assert!(table.contains(v.vendor().display_name()));
        assert!(table.contains(&v.credentials().client_id));
    }
    assert!(table.contains(sb.admin_url()));
    sb.shutdown().await;
}

#[tokio::test]
async fn fixed_port_already_in_use_is_a_bind_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = SandboxConfig {
        ports: PortPlan::Fixed {
            admin: 0,
            first_vendor: port,
        },
        ..SandboxConfig::default()
    };
    match Sandbox::start(config).await {
        Err(SandboxError::Bind { addr, .. }) => assert_eq!(addr.port(), port),
        Err(other) => panic!("expected a bind error, got {other}"),
        Ok(_) => panic!("started on a taken port"),
    }
}

#[tokio::test]
async fn invalid_fault_fraction_is_rejected_at_start() {
    let mut config = SandboxConfig::default();
    config.faults.rate_limited = 1.5;
    let err = Sandbox::start(config).await.err().expect("must fail");
    assert!(err.to_string().contains("rate_limited"), "{err}");
}

#[tokio::test]
async fn request_log_shows_requests_with_credentials_redacted() {
    let sb = start(SandboxConfig::default()).await;
    let zoho = sb.vendor(Vendor::Zoho).unwrap();
    let token = access_token(&sb).await;
    let r = client()
        .get(format!("{}/crm/v7/Leads?fields=Last_Name", zoho.base_url()))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = admin_get(&sb, "/admin/log?vendor=zoho").await;
    let reqs = log["requests"].as_array().unwrap();
    let last = reqs.last().unwrap();
    assert_eq!(last["method"], "GET");
    assert_eq!(last["uri"], "/crm/v7/Leads?fields=Last_Name");
    assert_eq!(last["status"], 200);
    let auth = last["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .unwrap();
    assert_eq!(auth[1], "Zoho-oauthtoken ***");
    assert!(
        !log.to_string().contains(&token),
        "the log leaks the access token"
    );
    // Token requests carry secrets in the query or body; the log masks them.
    let token_call = reqs
        .iter()
        .find(|r| r["uri"].as_str().unwrap().starts_with("/oauth/v2/token"))
        .unwrap();
    assert!(
        !log.to_string().contains("weftsandboxzohoclientsecret"),
        "the log leaks the client secret"
    );
    assert!(
        token_call["uri"]
            .as_str()
            .unwrap()
            .contains("client_secret=***"),
        "{}",
        token_call["uri"]
    );
    assert!(
        token_call["uri"]
            .as_str()
            .unwrap()
            .contains("grant_type=refresh_token"),
        "other parameters stay readable"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_rate_limit_uses_the_vendor_throttle_shape() {
    let sb = start(SandboxConfig::default()).await;
    let zoho = sb.vendor(Vendor::Zoho).unwrap();
    let token = access_token(&sb).await;
    let set = client()
        .put(format!("{}/admin/faults", sb.admin_url()))
        .json(&json!({"vendor": "zoho", "rate_limited": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let r = client()
        .get(format!("{}/crm/v7/Leads?fields=Last_Name", zoho.base_url()))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_REQUESTS");
    let log = admin_get(&sb, "/admin/log?vendor=zoho").await;
    assert_eq!(
        log["requests"].as_array().unwrap().last().unwrap()["fault"],
        "rate_limited"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_server_error_uses_the_vendor_error_shape() {
    let sb = start(SandboxConfig::default()).await;
    sb.set_faults(
        Some(Vendor::Zoho),
        FaultConfig {
            server_error: 1.0,
            ..FaultConfig::default()
        },
    );
    let r = client()
        .get(format!(
            "{}/crm/v7/Leads",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "INTERNAL_ERROR");
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_drop_closes_the_connection_without_a_response() {
    let sb = start(SandboxConfig::default()).await;
    sb.set_faults(
        Some(Vendor::Zoho),
        FaultConfig {
            dropped: 1.0,
            ..FaultConfig::default()
        },
    );
    let err = client()
        .get(format!(
            "{}/crm/v7/Leads",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_request() || err.is_connect() || err.is_body(),
        "{err:?}"
    );
    assert!(err.status().is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn injected_slowness_delays_the_answer() {
    let sb = start(SandboxConfig::default()).await;
    sb.set_faults(
        Some(Vendor::Zoho),
        FaultConfig {
            slow: 1.0,
            slow_delay_ms: 300,
            ..FaultConfig::default()
        },
    );
    let t = std::time::Instant::now();
    let r = client()
        .get(format!(
            "{}/crm/v7/Leads",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(t.elapsed().as_millis() >= 300);
    sb.shutdown().await;
}

#[tokio::test]
async fn faults_are_seeded_so_a_run_replays() {
    async fn pattern(seed: u64) -> Vec<u16> {
        let mut config = SandboxConfig::default();
        config.data.seed = seed;
        config.faults.server_error = 0.5;
        let sb = start(config).await;
        let url = format!(
            "{}/crm/v7/Leads",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        );
        let mut out = Vec::new();
        for _ in 0..16 {
            out.push(client().get(&url).send().await.unwrap().status().as_u16());
        }
        sb.shutdown().await;
        out
    }
    let a = pattern(9).await;
    assert_eq!(a, pattern(9).await);
    assert!(a.contains(&500) && a.contains(&401), "{a:?}");
}

#[tokio::test]
async fn invalid_fault_fraction_through_admin_is_a_400() {
    let sb = start(SandboxConfig::default()).await;
    let r = client()
        .put(format!("{}/admin/faults", sb.admin_url()))
        .json(&json!({"dropped": 2.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("dropped"));
    let r = client()
        .get(format!("{}/admin/vendors/nosuch/state", sb.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    sb.shutdown().await;
}

#[tokio::test]
async fn admin_reset_discards_writes_and_seed_changes_the_data_deterministically() {
    let sb = start(SandboxConfig {
        data: DemoData {
            seed: 1,
            size: DemoSize::uniform(5),
        },
        ..SandboxConfig::default()
    })
    .await;
    let first = admin_get(&sb, "/admin/vendors/zoho/state").await;
    assert_eq!(first["modules"]["Contacts"]["records"], 5);
    let rec = |sb: &Sandbox, id: &str| {
        let url = format!(
            "{}/admin/vendors/zoho/records/Contacts/{id}",
            sb.admin_url()
        );
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let id = "4876876002000000000";
    let before = rec(&sb, id).await;
    admin_post(&sb, "/admin/seed", json!({"seed": 2})).await;
    let other = rec(&sb, id).await;
    assert_ne!(before["Email"], other["Email"]);
    admin_post(
        &sb,
        "/admin/seed",
        json!({"seed": 1, "size": DemoSize::uniform(7)}),
    )
    .await;
    assert_eq!(rec(&sb, id).await["Email"], before["Email"]);
    let state = admin_get(&sb, "/admin/vendors/zoho/state").await;
    assert_eq!(state["modules"]["Contacts"]["records"], 7);
    // Writes vanish on reset.
    let token = access_token(&sb).await;
    let r = client()
        .post(format!(
            "{}/crm/v7/Contacts",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .header("Authorization", format!("Zoho-oauthtoken {token}"))
        .json(&json!({"data": [{"Last_Name": "Reset"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        admin_get(&sb, "/admin/vendors/zoho/state").await["modules"]["Contacts"]["records"],
        8
    );
    admin_post(&sb, "/admin/reset", json!({"vendor": "zoho"})).await;
    assert_eq!(
        admin_get(&sb, "/admin/vendors/zoho/state").await["modules"]["Contacts"]["records"],
        7
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn admin_listens_separately_from_vendor_paths() {
    let sb = start(SandboxConfig::default()).await;
    let r = client()
        .get(format!(
            "{}/admin/vendors",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let index = admin_get(&sb, "/admin").await;
    assert!(
        index["vendors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["vendor"] == "zoho")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn oversized_request_bodies_get_413() {
    let sb = start(SandboxConfig::default()).await;
    let big = vec![b'x'; 33 * 1024 * 1024];
    let r = client()
        .post(format!(
            "{}/crm/v7/Leads",
            sb.vendor(Vendor::Zoho).unwrap().base_url()
        ))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    sb.shutdown().await;
}

/// Each word of a header name starts upper-case (`Content-Type`, `Sforce-Limit-Info`).
fn is_title_case(name: &str) -> bool {
    name.split('-')
        .all(|word| word.chars().next().is_some_and(|c| !c.is_ascii_lowercase()))
}

#[tokio::test]
async fn every_emulator_writes_header_names_in_title_case() {
    let sb = start(SandboxConfig::default()).await;
    let mut servers: Vec<(String, String)> = sb
        .vendors()
        .map(|v| (v.vendor().to_string(), v.base_url().to_string()))
        .collect();
    servers.push(("admin".into(), sb.admin_url().to_string()));
    for (name, url) in servers {
        // An unauthenticated call: every emulator answers it with a body and its error headers.
        let head = raw_response_head(&url, "GET", "/weft-no-such-path", &[]).await;
        let names = header_names(&head);
        assert!(
            names.contains(&"Date") && names.contains(&"Content-Length"),
            "{name}: {head}"
        );
        for n in names {
            assert!(
                is_title_case(n),
                "{name} sent the header name {n:?}:\n{head}"
            );
        }
    }
    sb.shutdown().await;
}
