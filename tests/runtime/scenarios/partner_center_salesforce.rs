//! Scenario 5 (`examples/partner-center-salesforce/`): Partner Center co-sell referrals and
//! Salesforce opportunities, both ways, run against the sandbox; every test checks what ended up
//! in the target through the vendor's own API.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_capabilities::{Connection, Connections};
use weft_engine::{Plan, PlanOptions, RetryPolicy, RunOptions, RunReport};
use weft_flow::{Flow, StepId};
use weft_runtime::{CallContext, Verification};
use weft_sandbox::{SandboxConfig, Vendor};
use weft_tests::conformance::Receiver;
use weft_tests::scenario::{Scenario, example, step};

const INBOUND: &str = "partner-center-salesforce/1-referrals-to-opportunities.toml";
const OUTBOUND: &str = "partner-center-salesforce/2-opportunities-to-referrals.toml";
const WRITE_BACK: &str = "partner-center-salesforce/3-referrals-write-back.toml";
const EVENTS: [&str; 4] = [
    "referral-created",
    "referral-updated",
    "related-referral-created",
    "related-referral-updated",
];

async fn start() -> Scenario {
    let s = Scenario::start(SandboxConfig::default()).await;
    let key = s
        .sandbox
        .vendor(Vendor::Salesforce)
        .unwrap()
        .credentials()
        .extra["jwt_private_key_pem"]
        .clone();
    s.secret("salesforce_sandbox_jwt_key", &key).await;
    s
}

/// Plans `path` the way [`Scenario::run`] does, for the tests that drive a run themselves.
async fn plan(s: &Scenario, path: &str, environment: &str) -> (Flow, Plan) {
    let flow = weft_flow::load(&example(path)).unwrap_or_else(|e| panic!("{e}"));
    let declared: Vec<String> = flow
        .file
        .variables
        .keys()
        .map(|k| k.get_ref().to_string())
        .collect();
    let variables = if environment == "sandbox" {
        s.sandbox
            .flow_variables()
            .into_iter()
            .filter(|(k, _)| declared.contains(k))
            .collect()
    } else {
        BTreeMap::new()
    };
    let options = PlanOptions {
        environment: Some(environment.to_owned()),
        tenant: "default".into(),
        variables,
    };
    let plan = weft_engine::plan_with(&flow, &options, &s.plugins, &s.runtime)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (flow, plan)
}

fn context(s: &Scenario, plan: &Plan, flow: &Flow, connection: &str) -> CallContext {
    let mut connections = Connections::new();
    connections.insert(
        Connection::new(plan.connections[connection].spec.clone(), s.secrets.clone()).unwrap(),
    );
    CallContext::new("default")
        .with_connections(connections)
        .in_flow(flow.file.name.get_ref().to_string())
}

/// Registers the flow's webhook (its trigger's events on its `pc-events` connection) at `url`.
async fn register(s: &Scenario, url: &str) -> String {
    let (flow, plan) = plan(s, INBOUND, "sandbox").await;
    let events = flow
        .file
        .trigger
        .as_ref()
        .unwrap()
        .get_ref()
        .webhook
        .as_ref()
        .unwrap()
        .get_ref()
        .events
        .clone();
    let bound = &plan.connections["pc-events"];
    bound
        .plugin
        .subscribe(
            &context(s, &plan, &flow, "pc-events"),
            "pc-events",
            &bound.config,
            url,
            events,
        )
        .await
        .expect("subscribe")
        .id
}

/// What `weft serve` does with a delivery: the webhook connection verifies it, its events feed
/// the read steps on that connection, and the flow runs over them.
async fn run_delivery(s: &Scenario, delivery: weft_runtime::InboundRequest) -> RunReport {
    let (flow, plan) = plan(s, INBOUND, "sandbox").await;
    let bound = &plan.connections["pc-events"];
    let events = match bound
        .plugin
        .verify(
            &context(s, &plan, &flow, "pc-events"),
            "pc-events",
            &bound.config,
            delivery,
        )
        .await
        .expect("verify")
    {
        Verification::Accepted(events) => events,
        other => panic!("the genuine delivery was not accepted: {other:?}"),
    };
    let records: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.record).unwrap())
        .collect();
    let injected = BTreeMap::from([(StepId::try_from("events".to_owned()).unwrap(), records)]);
    let options = RunOptions {
        environment: Some("sandbox".into()),
        retry: RetryPolicy {
            attempts: 6,
            base: std::time::Duration::from_millis(20),
            max_wait: std::time::Duration::from_secs(2),
        },
        ..RunOptions::default()
    };
    weft_engine::run_with_events(
        &flow,
        &plan,
        &s.store,
        &s.secrets,
        &options,
        injected,
        &mut |_: &weft_engine::Progress<'_>| {},
    )
    .await
    .unwrap()
}

async fn run(s: &Scenario, path: &str) -> RunReport {
    let report = s.run(&example(path), Some("sandbox"), &[]).await;
    assert!(report.completed(), "{path}: {report:#?}");
    report
}

// ---------------------------------------------------------------- the vendors' own APIs

fn pc_base(s: &Scenario) -> String {
    s.sandbox
        .vendor(Vendor::PartnerCenter)
        .unwrap()
        .base_url()
        .to_owned()
}

async fn pc(
    s: &Scenario,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let c = s
        .sandbox
        .vendor(Vendor::PartnerCenter)
        .unwrap()
        .credentials();
    let refresh = c.refresh_token.clone().unwrap();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    let token: Value = reqwest::Client::new()
        .post(&c.extra["token_url"])
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut r = reqwest::Client::new()
        .request(method, format!("{}{path}", pc_base(s)))
        .bearer_auth(token["access_token"].as_str().unwrap());
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn referral(s: &Scenario, id: &str) -> Value {
    pc(
        s,
        reqwest::Method::GET,
        &format!("/v1.0/engagements/referrals/{id}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap()
}

async fn referrals(s: &Scenario) -> Vec<Value> {
    let r: Value = pc(
        s,
        reqwest::Method::GET,
        "/v1.0/engagements/referrals?$top=100",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    r["value"].as_array().unwrap().clone()
}

async fn incoming_referral(s: &Scenario, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!(
            "{}/admin/vendors/partner-center/actions/incoming-referral",
            s.sandbox.admin_url()
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

async fn sf_session(s: &Scenario) -> (String, String) {
    weft_tests::vendor::salesforce_session(&s.sandbox).await
}

async fn soql(s: &Scenario, q: &str) -> Vec<Value> {
    let (token, root) = sf_session(s).await;
    let r: Value = reqwest::Client::new()
        .get(format!("{root}/query"))
        .query(&[("q", q)])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["records"]
        .as_array()
        .unwrap_or_else(|| panic!("{q}: {r}"))
        .clone()
}

const OPPORTUNITY_FIELDS: &str = "Id, Name, Amount, CurrencyIsoCode, StageName, CloseDate, Sync_with_Partner_Center__c, Partner_Center_Co_Sell__c, Partner_Center_Referral_Id__c, Partner_Center_Referral_Link__c, Microsoft_CRM_Id__c, Partner_Center_Status__c, Partner_Center_Direction__c, Partner_Center_Audit__c, Partner_Center_Sync_Status__c, AccountId";

async fn opportunities(s: &Scenario) -> Vec<Value> {
    soql(
        s,
        &format!("SELECT {OPPORTUNITY_FIELDS} FROM Opportunity ORDER BY Id LIMIT 2000"),
    )
    .await
}

async fn sf_patch(s: &Scenario, object: &str, id: &str, body: Value) {
    let (token, root) = sf_session(s).await;
    let r = reqwest::Client::new()
        .patch(format!("{root}/sobjects/{object}/{id}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "{object} {id}: {}",
        r.text().await.unwrap()
    );
}

async fn errors(s: &Scenario, report: &RunReport) -> Vec<(String, Value, String)> {
    s.store
        .run_errors(&report.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.step.clone(),
                e.record
                    .as_deref()
                    .map(|r| serde_json::from_str(r).unwrap())
                    .unwrap_or(Value::Null),
                e.error.clone(),
            )
        })
        .collect()
}

fn throughput(report: &RunReport, records: u64) -> String {
    format!(
        "{records} records in {:.2} s ({:.0} records/s)",
        report.took.as_secs_f64(),
        records as f64 / report.took.as_secs_f64().max(1e-6)
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_the_webhook_twice_leaves_one_registration_per_event() {
    let s = start().await;
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let first = register(&s, &old.url).await;
    let second = register(&s, &new.url).await;
    assert_eq!(first, second, "the registration is replaced, not added to");
    let registration: Value = pc(&s, reqwest::Method::GET, "/webhooks/v1/registration", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(registration["WebhookUrl"], new.url.as_str());
    assert_eq!(registration["WebhookEvents"], json!(EVENTS));
    incoming_referral(&s, json!({})).await;
    let delivered = new.next().await;
    assert!(String::from_utf8_lossy(&delivered.body).contains("referral-created"));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(old.all().is_empty(), "nothing goes to the replaced URL");
    assert!(
        new.all().is_empty(),
        "one delivery per event, not one per registration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_referral_event_becomes_a_flagged_opportunity_in_the_waiting_stage() {
    let s = start().await;
    let receiver = Receiver::start().await;
    register(&s, &receiver.url).await;
    let created = incoming_referral(
        &s,
        json!({"name": "Contoso - co-sell from Microsoft", "type": "Shared"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let delivery = receiver.next().await;
    let before = s.sandbox.requests(Some(Vendor::PartnerCenter)).len();
    let report = run_delivery(&s, delivery.clone()).await;
    assert!(report.completed(), "{report:#?}");
    assert_eq!(
        step(&report, "events").records_out,
        1,
        "one event, the pointer"
    );
    assert_eq!(
        step(&report, "referrals").records_out,
        1,
        "the referral it points at"
    );
    assert_eq!(step(&report, "save").records_out, 1);
    let fetched: Vec<_> = s
        .sandbox
        .requests(Some(Vendor::PartnerCenter))
        .into_iter()
        .skip(before)
        .filter(|r| r.uri.contains(&id))
        .collect();
    assert!(!fetched.is_empty(), "the referral was read by id");

    let matching: Vec<Value> = opportunities(&s)
        .await
        .into_iter()
        .filter(|o| o["Partner_Center_Referral_Id__c"] == id.as_str())
        .collect();
    assert_eq!(matching.len(), 1, "{matching:?}");
    let o = &matching[0];
    assert_eq!(o["Name"], "Contoso - co-sell from Microsoft");
    assert_eq!(
        o["Amount"].as_f64(),
        created["details"]["dealValue"].as_f64()
    );
    assert_eq!(o["CurrencyIsoCode"], created["details"]["currency"]);
    assert_eq!(
        o["CloseDate"],
        created["details"]["closingDateTime"].as_str().unwrap()[..10]
    );
    assert_eq!(
        o["StageName"], "Qualification",
        "the waiting stage until the seller accepts"
    );
    assert_eq!(
        o["Sync_with_Partner_Center__c"], "Yes",
        "new inbound referrals are flagged for sync"
    );
    assert_eq!(o["Partner_Center_Co_Sell__c"], "Yes");
    assert_eq!(
        o["Partner_Center_Referral_Link__c"],
        created["links"]["self"]["uri"]
    );
    assert_eq!(o["Microsoft_CRM_Id__c"], created["engagementId"]);
    assert_eq!(o["Partner_Center_Status__c"], "New");
    assert_eq!(o["Partner_Center_Direction__c"], "Incoming");
    assert_eq!(o["Partner_Center_Audit__c"], created["updatedDateTime"]);
    assert_eq!(o["Partner_Center_Sync_Status__c"], "✔");

    // The same delivery again (a redelivery, or an update): still one opportunity.
    let again = run_delivery(&s, delivery).await;
    assert!(again.completed());
    let matching = opportunities(&s)
        .await
        .into_iter()
        .filter(|o| o["Partner_Center_Referral_Id__c"] == id.as_str())
        .count();
    assert_eq!(matching, 1, "upserted on the referral id, not duplicated");
    eprintln!(
        "inbound: {}, {} Partner Center and {} Salesforce requests in all",
        throughput(&report, 1),
        s.sandbox.requests(Some(Vendor::PartnerCenter)).len(),
        s.sandbox.requests(Some(Vendor::Salesforce)).len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_sends_only_flagged_valid_opportunities_out_of_waiting_and_writes_back_marks() {
    let s = start().await;
    let before = opportunities(&s).await;
    let by_index = |i: usize| before[i]["Id"].as_str().unwrap().to_owned();
    // The demo flags every third opportunity; this test decides which ones and how they look.
    for o in &before {
        sf_patch(
            &s,
            "Opportunity",
            o["Id"].as_str().unwrap(),
            json!({"Sync_with_Partner_Center__c": "No"}),
        )
        .await;
    }
    let good = by_index(0);
    let waiting = by_index(3);
    let zero = by_index(6);
    let no_solution = by_index(9);
    let no_contact = by_index(12);
    let bad_country = by_index(15);
    let unflagged = by_index(1);
    let flag = json!({"Sync_with_Partner_Center__c": "Yes", "StageName": "Proposal", "Amount": 25000, "CurrencyIsoCode": "EUR", "Partner_Center_Solution__c": "weft-solution-1", "Partner_Center_Co_Sell__c": "Yes", "Partner_Center_Contact_Email__c": "buyer@contoso.example"});
    for id in [
        &good,
        &waiting,
        &zero,
        &no_solution,
        &no_contact,
        &bad_country,
    ] {
        sf_patch(&s, "Opportunity", id, flag.clone()).await;
    }
    sf_patch(
        &s,
        "Opportunity",
        &waiting,
        json!({"StageName": "Qualification"}),
    )
    .await;
    sf_patch(&s, "Opportunity", &zero, json!({"Amount": 0})).await;
    sf_patch(
        &s,
        "Opportunity",
        &no_solution,
        json!({"Partner_Center_Solution__c": null}),
    )
    .await;
    sf_patch(
        &s,
        "Opportunity",
        &no_contact,
        json!({"Partner_Center_Contact_Email__c": null}),
    )
    .await;
    sf_patch(
        &s,
        "Opportunity",
        &unflagged,
        json!({"StageName": "Proposal", "Partner_Center_Solution__c": "weft-solution-1"}),
    )
    .await;
    let account = before[15]["AccountId"].as_str().unwrap().to_owned();
    assert!(
        before
            .iter()
            .filter(|o| o["AccountId"] == account.as_str())
            .count()
            == 1,
        "the account is the bad-country opportunity's alone"
    );
    sf_patch(&s, "Account", &account, json!({"BillingCountry": "USA"})).await;

    // The flows in their defined order (the job chain's `after`).
    let requests = |v| s.sandbox.requests(Some(v)).len();
    let (pc0, sf0) = (
        requests(Vendor::PartnerCenter),
        requests(Vendor::Salesforce),
    );
    run(&s, INBOUND).await;
    let outbound = run(&s, OUTBOUND).await;
    let (pc1, sf1) = (
        requests(Vendor::PartnerCenter),
        requests(Vendor::Salesforce),
    );
    let write_back = run(&s, WRITE_BACK).await;
    let (pc2, sf2) = (
        requests(Vendor::PartnerCenter),
        requests(Vendor::Salesforce),
    );

    let sent: Vec<Value> = referrals(&s)
        .await
        .into_iter()
        .filter(|r| r["externalReferenceId"].is_string())
        .collect();
    let sent_ids: Vec<&str> = sent
        .iter()
        .map(|r| r["externalReferenceId"].as_str().unwrap())
        .collect();
    assert_eq!(
        sent_ids,
        [good.as_str()],
        "only the flagged, valid opportunity out of the waiting stage was sent"
    );
    let r = &sent[0];
    assert_eq!(r["direction"], "Outgoing");
    assert_eq!(r["type"], "Shared", "co-sell");
    assert_eq!(r["details"]["dealValue"].as_f64(), Some(25000.0));
    assert_eq!(r["details"]["currency"], "EUR");
    assert_eq!(r["customerProfile"]["address"]["country"], "US");
    assert!(
        r["customerProfile"]["name"].is_string(),
        "the account's name: {r}"
    );
    assert_eq!(
        r["customerProfile"]["team"][0]["email"],
        "buyer@contoso.example"
    );
    assert_eq!(
        r["details"]["requirements"]["solutions"][0]["id"],
        "weft-solution-1"
    );

    // Validation failures are in the run's error log, each with its reason.
    let log = errors(&s, &outbound).await;
    let reason = |id: &str| {
        log.iter()
            .filter(|(_, rec, _)| rec["Id"] == id)
            .map(|(step, _, e)| format!("{step}: {e}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        reason(&zero).contains("checked") && reason(&zero).contains("Amount"),
        "{log:?}"
    );
    assert!(
        reason(&no_solution).contains("Partner_Center_Solution__c"),
        "{log:?}"
    );
    assert!(
        reason(&bad_country).contains("Account_BillingCountry"),
        "{log:?}"
    );
    assert!(
        reason(&no_contact).contains("contact-for-co-sell"),
        "{log:?}"
    );
    assert!(
        reason(&good).is_empty() && reason(&waiting).is_empty() && reason(&unflagged).is_empty(),
        "{log:?}"
    );

    // Write-back: the referral's id, link, Microsoft CRM id, audit and a check mark; a cross on
    // the ones that failed validation; nothing on the others.
    let after: BTreeMap<String, Value> = opportunities(&s)
        .await
        .into_iter()
        .map(|o| (o["Id"].as_str().unwrap().to_owned(), o))
        .collect();
    let o = &after[&good];
    assert_eq!(o["Partner_Center_Referral_Id__c"], r["id"]);
    assert_eq!(
        o["Partner_Center_Referral_Link__c"],
        r["links"]["self"]["uri"]
    );
    assert_eq!(o["Microsoft_CRM_Id__c"], r["engagementId"]);
    assert_eq!(o["Partner_Center_Status__c"], "New");
    assert_eq!(o["Partner_Center_Direction__c"], "Outgoing");
    assert_eq!(o["Partner_Center_Audit__c"], r["updatedDateTime"]);
    assert_eq!(o["Partner_Center_Sync_Status__c"], "✔");
    for failed in [&zero, &no_solution, &no_contact, &bad_country] {
        assert_eq!(
            after[failed]["Partner_Center_Sync_Status__c"], "✗",
            "{failed}: {:?}",
            after[failed]
        );
        assert!(after[failed]["Partner_Center_Referral_Id__c"].is_null());
    }
    for untouched in [&waiting, &unflagged] {
        assert!(
            after[untouched]["Partner_Center_Sync_Status__c"].is_null(),
            "{:?}",
            after[untouched]
        );
    }

    // Running the outbound flow again sends an edit of the sent one as an update, not a second referral.
    sf_patch(&s, "Opportunity", &good, json!({"Amount": 30000})).await;
    run(&s, OUTBOUND).await;
    let again: Vec<Value> = referrals(&s)
        .await
        .into_iter()
        .filter(|r| r["externalReferenceId"] == good.as_str())
        .collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["details"]["dealValue"].as_f64(), Some(30000.0));

    let read = step(&outbound, "opportunities").records_out;
    eprintln!(
        "outbound: {}, {} Partner Center / {} Salesforce requests for flows 1+2; write-back: {}, {} / {} requests",
        throughput(&outbound, read),
        pc1 - pc0,
        sf1 - sf0,
        throughput(&write_back, step(&write_back, "referrals").records_out),
        pc2 - pc1,
        sf2 - sf1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_out_of_the_waiting_stage_accepts_the_referral_and_edits_while_waiting_are_not_sent()
{
    let s = start().await;
    let receiver = Receiver::start().await;
    register(&s, &receiver.url).await;
    let created = incoming_referral(&s, json!({"name": "Fabrikam - from Microsoft"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = run_delivery(&s, receiver.next().await).await;
    assert!(
        first.completed(),
        "{first:#?} {:?}",
        errors(&s, &first).await
    );
    let opportunity = opportunities(&s)
        .await
        .into_iter()
        .find(|o| o["Partner_Center_Referral_Id__c"] == id.as_str())
        .unwrap();
    let opp = opportunity["Id"].as_str().unwrap().to_owned();

    // Waiting: an edit in Salesforce is not sent.
    sf_patch(&s, "Opportunity", &opp, json!({"Amount": 777})).await;
    let waiting = run(&s, OUTBOUND).await;
    assert_eq!(step(&waiting, "accept").records_in, 0, "{waiting:#?}");
    assert!(
        !referrals(&s)
            .await
            .iter()
            .any(|r| r["externalReferenceId"] == opp.as_str()),
        "not sent as a referral of its own either"
    );
    let unchanged = referral(&s, &id).await;
    assert_eq!(
        (
            unchanged["status"].as_str(),
            unchanged["substatus"].as_str()
        ),
        (Some("New"), Some("Pending"))
    );
    assert_eq!(
        unchanged["eTag"], created["eTag"],
        "the referral was not touched"
    );

    // Out of the waiting stage: the referral is accepted, once.
    sf_patch(
        &s,
        "Opportunity",
        &opp,
        json!({"StageName": "Needs Analysis"}),
    )
    .await;
    let moved = run(&s, OUTBOUND).await;
    assert_eq!(step(&moved, "accept").records_out, 1, "{moved:#?}");
    let accepted = referral(&s, &id).await;
    assert_eq!(
        (accepted["status"].as_str(), accepted["substatus"].as_str()),
        (Some("Active"), Some("Accepted"))
    );
    assert!(accepted["acceptedDateTime"].is_string());
    assert!(
        !referrals(&s)
            .await
            .iter()
            .any(|r| r["externalReferenceId"] == opp.as_str()),
        "an inbound referral is accepted, not sent again as a new one"
    );

    // The acceptance comes back as referral-updated; the opportunity records the new status.
    let update = loop {
        let d = receiver.next().await;
        if String::from_utf8_lossy(&d.body).contains("referral-updated") {
            break d;
        }
    };
    assert!(run_delivery(&s, update).await.completed());
    let o = opportunities(&s)
        .await
        .into_iter()
        .find(|o| o["Id"] == opp.as_str())
        .unwrap();
    assert_eq!(o["Partner_Center_Status__c"], "Active");
    assert_eq!(o["StageName"], "Needs Analysis");
    // The audit trail holds both changes seen, in order: new, then accepted.
    let mut trail: Vec<Value> = s
        .dataset("partner_center_audit")
        .await
        .into_iter()
        .filter(|r| r["referral_id"] == id.as_str())
        .collect();
    trail.sort_by(|a, b| a["changed_at"].as_str().cmp(&b["changed_at"].as_str()));
    let steps: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap(),
                r["substatus"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [("New", "Pending"), ("Active", "Accepted")],
        "{trail:#?}"
    );
    // Accepted already: the next outbound run sends nothing.
    let quiet = run(&s, OUTBOUND).await;
    assert_eq!(step(&quiet, "accept").records_in, 0);
}

/// What must not change between environments: each step's id, what it is given (a transform's
/// config, a read's options, a write's stream) and the schema of what it hands on.
fn same_steps(plan: &Plan) -> Vec<(String, String, serde_json::Value)> {
    use weft_engine::Work;
    plan.steps
        .iter()
        .map(|s| {
            let given = match &s.work {
                Work::Read(r) => r.options.clone(),
                Work::Transform(t) => t.config.clone(),
                Work::Condition(c) => c.config.clone(),
                Work::ForEach(f) => f.options.to_string(),
                Work::Write(w) => w.stream.clone(),
            };
            (s.id.to_string(), given, (*s.schema).clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staging_and_production_run_the_same_steps_with_other_connections() {
    let s = start().await;
    for path in [INBOUND, OUTBOUND, WRITE_BACK] {
        let (_, staging) = plan(&s, path, "staging").await;
        let (_, production) = plan(&s, path, "production").await;
        let (_, sandbox) = plan(&s, path, "sandbox").await;
        for other in [&production, &sandbox] {
            assert_eq!(
                same_steps(&staging),
                same_steps(other),
                "{path}: steps, transform configs, read options, record schemas"
            );
            assert_eq!(
                staging.connections.keys().collect::<Vec<_>>(),
                other.connections.keys().collect::<Vec<_>>()
            );
        }
        let auth = |p: &Plan, c: &str| format!("{:?}", p.connections[c].spec.auth);
        assert!(
            auth(&staging, "salesforce").contains("test.salesforce.com"),
            "{}",
            auth(&staging, "salesforce")
        );
        assert!(auth(&production, "salesforce").contains("login.salesforce.com"));
        assert!(auth(&staging, "pc").contains("contoso-staging.onmicrosoft.com"));
        assert!(auth(&production, "pc").contains("contoso.onmicrosoft.com/"));
        let egress = |p: &Plan| format!("{:?}", p.connections["salesforce"].spec.egress);
        assert!(
            egress(&staging).contains("contoso--staging.sandbox.my.salesforce.com")
                && egress(&production).contains("contoso.my.salesforce.com")
        );
    }
    // The variables choose the fields: another deal value field is what the outbound checks use.
    let flow = weft_flow::load(&example(OUTBOUND)).unwrap();
    let options = PlanOptions {
        environment: Some("production".into()),
        tenant: "default".into(),
        variables: BTreeMap::from([(
            "deal_value_field".to_owned(),
            "ExpectedRevenue__c".to_owned(),
        )]),
    };
    let err = weft_engine::plan_with(&flow, &options, &s.plugins, &s.runtime)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("ExpectedRevenue__c"),
        "a field the org's schema lacks is caught before anything runs: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_mark_variable_marks_the_names_of_opportunities_made_from_referrals() {
    let s = start().await;
    let created = incoming_referral(&s, json!({"name": "Northwind - shared by Microsoft"})).await;
    let id = created["id"].as_str().unwrap();
    // Run by hand: the initial sync reads every referral.
    let report = s
        .run(
            &example(INBOUND),
            Some("sandbox"),
            &[("sync_mark", " [Partner Center]")],
        )
        .await;
    assert!(report.completed(), "{report:#?}");
    let marked: Vec<Value> = opportunities(&s)
        .await
        .into_iter()
        .filter(|o| o["Partner_Center_Referral_Id__c"] == id)
        .collect();
    assert_eq!(
        marked[0]["Name"],
        "Northwind - shared by Microsoft [Partner Center]"
    );
    // Without it (the default), the name is the referral's.
    assert!(
        s.run(&example(INBOUND), Some("sandbox"), &[])
            .await
            .completed()
    );
    let plain: Vec<Value> = opportunities(&s)
        .await
        .into_iter()
        .filter(|o| o["Partner_Center_Referral_Id__c"] == id)
        .collect();
    assert_eq!(plain[0]["Name"], "Northwind - shared by Microsoft");
}
