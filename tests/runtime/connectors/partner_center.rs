//! The `partner-center` connector against the Partner Center emulator: the conformance suite,
//! then registration replacement, certificate trust, JSON Patch updates with If-Match.

use std::time::Duration;

use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Secret, SecretRef};
use weft_runtime::bindings::WriteMode;
use weft_runtime::{InboundRequest, Verification, WriteStatus};
use weft_tests::conformance::{CONNECTION, Case, Harness, PartialBatch, Receiver, Sandbox, Vendor};

pub struct PartnerCenter;

fn literal(s: &str) -> SecretRef {
    SecretRef::Literal(Secret::new(s))
}

fn base(sandbox: &Sandbox) -> String {
    sandbox
        .vendor(Vendor::PartnerCenter)
        .expect("partner center runs")
        .base_url()
        .to_owned()
}

/// An App+User token from the emulator's demo refresh token, for changes behind the connector.
async fn token(sandbox: &Sandbox) -> String {
    let c = sandbox.vendor(Vendor::PartnerCenter).unwrap().credentials();
    let refresh = c.refresh_token.clone().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    let r: Value = reqwest::Client::new()
        .post(&c.extra["token_url"])
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().expect("a token").to_owned()
}

async fn api(
    sandbox: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .request(method, format!("{}{path}", base(sandbox)))
        .bearer_auth(token(sandbox).await);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn referral_ids(sandbox: &Sandbox, n: usize) -> Vec<String> {
    let r: Value = api(
        sandbox,
        reqwest::Method::GET,
        &format!("/v1.0/engagements/referrals?$top={n}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    r["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

fn new_referral(name: &str) -> Value {
    json!({"name": name, "qualification": "SalesQualified", "type": "Independent",
        "customerProfile": {"name": "Contoso Customer Inc", "size": "10to50employees", "address": {"addressLine1": "One Microsoft Way", "city": "Redmond", "state": "WA", "postalCode": "98052", "country": "US"}},
        "consent": {"consentToShareReferralWithMicrosoftSellers": false},
        "details": {"dealValue": 120000, "currency": "USD", "closingDateTime": "2026-12-31T00:00:00Z"}})
}

async fn incoming_referral(sandbox: &Sandbox) -> Value {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/admin/vendors/partner-center/actions/incoming-referral",
            sandbox.admin_url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

impl Case for PartnerCenter {
    const PLUGIN: &'static str = weft_tests::PARTNER_CENTER;
    const VENDOR: Vendor = Vendor::PartnerCenter;
    const STREAM: &'static str = "referrals";
    const PAGE_SIZE: u32 = 4;

    fn config(sandbox: &Sandbox) -> Value {
        let c = sandbox.vendor(Vendor::PartnerCenter).unwrap().credentials();
        let b = base(sandbox);
        json!({"api_url": b, "webhooks_url": b, "certificate_url_prefix": format!("{b}/cert/"), "trusted_ca_pem": c.extra["webhook_test_ca_pem"]})
    }

    fn unreachable_config(_sandbox: &Sandbox, dead: &str) -> Value {
        json!({"api_url": dead, "webhooks_url": dead})
    }

    fn auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox.vendor(Vendor::PartnerCenter).unwrap().credentials();
        AuthSpec::OAuth2Refresh {
            token_url: c.extra["token_url"].clone(),
            client_id: literal(&c.client_id),
            client_secret: literal(&c.client_secret),
            refresh_token: literal(&c.refresh_token.unwrap()),
            scope: None,
        }
    }

    fn bad_auth(sandbox: &Sandbox) -> AuthSpec {
        let c = sandbox.vendor(Vendor::PartnerCenter).unwrap().credentials();
        AuthSpec::OAuth2Refresh {
            token_url: c.extra["token_url"].clone(),
            client_id: literal(&c.client_id),
            client_secret: literal(&c.client_secret),
            refresh_token: literal("0.Arevoked-refresh-token"),
            scope: None,
        }
    }

    async fn expected_total(h: &Harness) -> usize {
        h.sandbox.data().size.referrals as usize
    }

    async fn change(h: &Harness, n: usize) -> Vec<String> {
        // updatedDateTime has one-second resolution: let the clock pass the cursor's instant.
        h.sandbox.advance_clock(Duration::from_secs(2));
        let ids = referral_ids(&h.sandbox, n).await;
        for id in &ids {
            let r = api(
                &h.sandbox,
                reqwest::Method::PATCH,
                &format!("/v1.0/engagements/referrals/{id}"),
                Some(json!([{"op": "add", "path": "/details/notes", "value": "changed upstream"}])),
            )
            .await;
            assert_eq!(r.status(), 204);
        }
        ids
    }

    fn stale_cursor(_h: &Harness) -> String {
        json!({"since": "2000-01-01T00:00:00Z"}).to_string()
    }

    fn future_cursor(_h: &Harness) -> String {
        json!({"since": "2100-01-01T00:00:00Z"}).to_string()
    }

    fn partial_batch() -> PartialBatch {
        let mut alpha3 = new_referral("Alpha-3 country");
        alpha3["customerProfile"]["address"]["country"] = json!("USA");
        let mut no_details = new_referral("No details");
        no_details.as_object_mut().unwrap().remove("details");
        PartialBatch {
            stream: "referrals",
            mode: WriteMode::Create,
            key: vec![],
            records: vec![
                new_referral("Weft co-sell A"),
                alpha3,
                no_details,
                new_referral("Weft co-sell B"),
            ],
            invalid: vec![1, 2],
        }
    }

    async fn written(h: &Harness, _stream: &str, id: &str) -> bool {
        api(
            &h.sandbox,
            reqwest::Method::GET,
            &format!("/v1.0/engagements/referrals/{id}"),
            None,
        )
        .await
        .status()
            == 200
    }

    async fn genuine_delivery(h: &Harness, receiver: &Receiver) -> InboundRequest {
        h.plugin
            .subscribe(&h.context, CONNECTION, &h.config, &receiver.url, vec![])
            .await
            .expect("subscribe");
        incoming_referral(&h.sandbox).await;
        receiver.next().await
    }
}

weft_tests::conformance!(suite, PartnerCenter);

async fn registration(h: &Harness) -> Value {
    api(
        &h.sandbox,
        reqwest::Method::GET,
        "/webhooks/v1/registration",
        None,
    )
    .await
    .json()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_replaces_the_existing_registration_one_url_per_event() {
    let h = Harness::start::<PartnerCenter>().await;
    let old = Receiver::start().await;
    let new = Receiver::start().await;
    let first = h
        .plugin
        .subscribe(
            &h.context,
            CONNECTION,
            &h.config,
            &old.url,
            vec!["referral-created".into()],
        )
        .await
        .unwrap();
    let second = h
        .plugin
        .subscribe(&h.context, CONNECTION, &h.config, &new.url, vec![])
        .await
        .expect("a second subscribe replaces, not conflicts");
    assert_eq!(first.id, second.id, "the same registration, updated");
    let r = registration(&h).await;
    assert_eq!(r["WebhookUrl"], new.url.as_str());
    assert_eq!(
        r["WebhookEvents"],
        json!([
            "referral-created",
            "referral-updated",
            "related-referral-created",
            "related-referral-updated"
        ])
    );
    incoming_referral(&h.sandbox).await;
    let delivered = new.next().await;
    assert!(String::from_utf8_lossy(&delivered.body).contains("referral-created"));
    assert!(old.all().is_empty(), "nothing goes to the replaced URL");
    h.plugin
        .unsubscribe(&h.context, CONNECTION, &h.config, &second.id)
        .await
        .unwrap();
    assert_eq!(
        api(
            &h.sandbox,
            reqwest::Method::GET,
            "/webhooks/v1/registration",
            None
        )
        .await
        .status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_the_referral_id_and_where_to_fetch_it() {
    let h = Harness::start::<PartnerCenter>().await;
    let receiver = Receiver::start().await;
    h.plugin
        .subscribe(&h.context, CONNECTION, &h.config, &receiver.url, vec![])
        .await
        .unwrap();
    let referral = incoming_referral(&h.sandbox).await;
    let delivery = receiver.next().await;
    match h.verify(delivery).await.unwrap() {
        Verification::Accepted(events) => {
            assert_eq!(events.len(), 1);
            let e = &events[0];
            assert_eq!(
                (e.stream.as_str(), e.action.as_str()),
                ("referrals", "referral-created")
            );
            let record: Value = serde_json::from_str(&e.record).unwrap();
            assert_eq!(record["id"], referral["id"]);
            assert!(
                record["resource_uri"]
                    .as_str()
                    .unwrap()
                    .ends_with(referral["id"].as_str().unwrap())
            );
            assert_eq!(
                record["referral_url"],
                format!(
                    "{}/v1.0/engagements/referrals/{}",
                    base(&h.sandbox),
                    referral["id"].as_str().unwrap()
                )
            );
            assert!(e.occurred_at.is_some());
        }
        other => panic!("accepted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_elsewhere_or_another_ca_are_refused() {
    let h = Harness::start::<PartnerCenter>().await;
    let receiver = Receiver::start().await;
    let genuine = PartnerCenter::genuine_delivery(&h, &receiver).await;
    // A certificate URL outside the configured prefix is not fetched at all.
    let mut elsewhere = genuine.clone();
    for (k, v) in elsewhere.headers.iter_mut() {
        if k.eq_ignore_ascii_case("x-ms-certificate-url") {
            *v = format!("{}/evil/cert.cer", base(&h.sandbox));
        }
    }
    assert!(matches!(
        h.verify(elsewhere).await.unwrap(),
        Verification::Rejected(_)
    ));
    // Trusting another CA (here the signing certificate itself) refuses the genuine chain.
    let leaf = reqwest::get(
        genuine
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-ms-certificate-url"))
            .unwrap()
            .1
            .clone(),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let mut config = h.config.clone();
    config["trusted_ca_pem"] = json!(leaf);
    let result = h
        .plugin
        .verify(&h.context, CONNECTION, &config, genuine.clone())
        .await
        .unwrap();
    assert!(
        matches!(result, Verification::Rejected(ref r) if r.contains("trusted CA")),
        "{result:?}"
    );
    // A missing signature is refused before anything is fetched.
    let mut unsigned = genuine;
    unsigned
        .headers
        .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    assert!(matches!(
        h.verify(unsigned).await.unwrap(),
        Verification::Rejected(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_json_patches_guarded_by_the_etag() {
    let h = Harness::start::<PartnerCenter>().await;
    let (records, _) = h
        .read_all(
            "referrals",
            weft_runtime::bindings::SyncMode::Full,
            None,
            100,
        )
        .await;
    let outgoing = records
        .iter()
        .find(|r| r["status"] == "New")
        .expect("a new referral")
        .clone();
    let id = outgoing["id"].as_str().unwrap().to_owned();
    let stale_etag = outgoing["eTag"].as_str().unwrap().to_owned();
    let h = &h;
    let write = |mode, key: Vec<&str>, records: Vec<Value>| {
        let batch = PartialBatch {
            stream: "referrals",
            mode,
            key: key.into_iter().map(String::from).collect(),
            records,
            invalid: vec![],
        };
        async move { h.write(&batch).await.expect("write") }
    };
    let updated = write(WriteMode::Update, vec!["id"], vec![json!({"id": id, "status": "Active", "substatus": "Accepted", "details": {"notes": "accepted by weft"}})]).await;
    assert_eq!(
        updated[0].status,
        WriteStatus::Updated,
        "{:?}",
        updated[0].error
    );
    let row: Value = api(
        &h.sandbox,
        reqwest::Method::GET,
        &format!("/v1.0/engagements/referrals/{id}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(row["status"], "Active");
    assert_eq!(row["details"]["notes"], "accepted by weft");
    assert_eq!(
        row["details"]["currency"], outgoing["details"]["currency"],
        "nested objects are merged, not replaced"
    );
    assert!(row["acceptedDateTime"].is_string());
    // The eTag read before that update no longer matches.
    let stale = write(
        WriteMode::Update,
        vec!["id"],
        vec![json!({"id": id, "eTag": stale_etag, "details": {"notes": "late"}})],
    )
    .await;
    assert_eq!(stale[0].status, WriteStatus::Failed);
    assert!(
        format!("{:?}", stale[0].error).contains("changed since"),
        "{:?}",
        stale[0].error
    );
    // A transition the state machine refuses fails its record only.
    let refused = write(
        WriteMode::Update,
        vec!["id"],
        vec![
            json!({"id": id, "status": "New", "substatus": "Pending"}),
            json!({"id": id, "details": {"notes": "still fine"}}),
        ],
    )
    .await;
    assert_eq!(
        (refused[0].status, refused[1].status),
        (WriteStatus::Failed, WriteStatus::Updated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_by_external_reference_creates_once_then_updates() {
    let h = Harness::start::<PartnerCenter>().await;
    let mut record = new_referral("From Salesforce");
    record["externalReferenceId"] = json!("006SF0000001");
    let batch = |r: Value| PartialBatch {
        stream: "referrals",
        mode: WriteMode::Upsert,
        key: vec!["externalReferenceId".into()],
        records: vec![r],
        invalid: vec![],
    };
    let first = h.write(&batch(record.clone())).await.unwrap();
    record["details"] = json!({"dealValue": 99000});
    let second = h.write(&batch(record)).await.unwrap();
    assert_eq!(
        (first[0].status, second[0].status),
        (WriteStatus::Created, WriteStatus::Updated),
        "{second:?}"
    );
    assert_eq!(first[0].id, second[0].id);
    let row: Value = api(
        &h.sandbox,
        reqwest::Method::GET,
        &format!(
            "/v1.0/engagements/referrals/{}",
            first[0].id.as_deref().unwrap()
        ),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(row["details"]["dealValue"], 99000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_option_reads_one_referral_and_an_unknown_one_is_a_record_failure() {
    let h = Harness::start::<PartnerCenter>().await;
    let id = referral_ids(&h.sandbox, 3).await[2].clone();
    let mut request = Harness::request(
        "referrals",
        weft_runtime::bindings::SyncMode::Full,
        None,
        100,
    );
    request.options = json!({"id": id}).to_string();
    let page = h.read_page(request.clone()).await.expect("read by id");
    let records: Vec<Value> = serde_json::from_str(&page.records).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["id"], id.as_str());
    assert!(page.done);
    request.options = json!({"id": "c05e1100-0000-4000-9000-00000000ffff"}).to_string();
    let err = h.read_page(request).await.unwrap_err();
    assert!(
        matches!(
            err.plugin_error(),
            Some(weft_runtime::bindings::PluginError::InvalidRecord(_))
        ),
        "{err}"
    );
}
