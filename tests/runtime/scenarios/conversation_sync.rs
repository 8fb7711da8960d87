//! Scenario 3: conversation-intelligence sync (`examples/conversation-sync/`): a CRM's records
//! synced into weft's datasets, incoming conversations matched to an open opportunity, account
//! or lead, activities written back, and the disconnect that deletes what was synced.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use weft_sandbox::{DemoData, DemoSize, SandboxConfig, Vendor};
use weft_tests::scenario::{Scenario, example, step};

/// Fewer deals than companies: accounts 10 to 19 have no opportunity at all.
fn config() -> SandboxConfig {
    SandboxConfig {
        data: DemoData {
            seed: 42,
            size: DemoSize {
                companies: 20,
                contacts: 50,
                deals: 10,
                leads: 20,
                ..DemoSize::default()
            },
        },
        ..SandboxConfig::default()
    }
}

async fn start() -> Scenario {
    let s = Scenario::start(config()).await;
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

async fn soql(s: &Scenario, q: &str) -> Vec<Value> {
    s.soql(q).await
}

fn domain(website: &str) -> String {
    website
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("www.")
        .trim_end_matches('/')
        .to_lowercase()
}

fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

/// The rows a dataset keeps for one CRM, by `key`.
async fn rows(s: &Scenario, dataset: &str, crm: &str, key: &str) -> BTreeMap<String, Value> {
    s.dataset(dataset)
        .await
        .into_iter()
        .filter(|r| r["crm"] == crm)
        .map(|r| (text(&r, key), r))
        .collect()
}

fn conversation(id: &str, email: &str) -> (String, String) {
    let record = json!({"id": id, "title": format!("Call {id}"), "summary": format!("What was said in {id}"), "date": "2026-11-30", "participants": [{"email": email}, {"email": "rep@our-product.example"}]});
    (json!([id]).to_string(), record.to_string())
}

#[tokio::test]
async fn salesforce_syncs_matches_conversations_writes_tasks_back_and_deletes_on_disconnect() {
    let s = start().await;
    let sync_flow = weft_flow::load(&example("conversation-sync/salesforce/sync.toml")).unwrap();
    let every = sync_flow
        .file
        .trigger
        .as_ref()
        .and_then(|t| t.get_ref().schedule.as_ref())
        .and_then(|s| s.get_ref().every.as_ref())
        .map(|e| e.get_ref().0);
    assert_eq!(every, Some(std::time::Duration::from_secs(4 * 3_600)));

    // The full sync at connection time.
    let sync = s
        .run(
            &example("conversation-sync/salesforce/sync.toml"),
            Some("sandbox"),
            &[],
        )
        .await;
    assert!(sync.completed(), "{sync:?}");
    let accounts = soql(&s, "SELECT Id, Name, Website, OwnerId FROM Account").await;
    let contacts = soql(&s, "SELECT Id, Email, AccountId FROM Contact").await;
    let leads = soql(&s, "SELECT Id, Email, IsConverted FROM Lead").await;
    let opportunities = soql(&s, "SELECT Id, AccountId, IsClosed FROM Opportunity").await;
    assert_eq!(
        (
            accounts.len(),
            contacts.len(),
            leads.len(),
            opportunities.len()
        ),
        (20, 50, 20, 10)
    );

    let synced = rows(&s, "ci_accounts", "salesforce", "id").await;
    assert_eq!(synced.len(), accounts.len());
    for a in &accounts {
        let row = &synced[&text(a, "Id")];
        assert_eq!(
            (&row["name"], text(row, "domain")),
            (&a["Name"], domain(&text(a, "Website")))
        );
    }
    let synced = rows(&s, "ci_contacts", "salesforce", "id").await;
    assert_eq!(synced.len(), contacts.len());
    for c in &contacts {
        let row = &synced[&text(c, "Id")];
        assert_eq!(
            (&row["email"], &row["account_id"]),
            (&c["Email"], &c["AccountId"])
        );
    }
    let synced = rows(&s, "ci_leads", "salesforce", "id").await;
    assert_eq!(synced.len(), leads.len());
    for l in &leads {
        assert_eq!(synced[&text(l, "Id")]["email"], l["Email"]);
    }
    let synced = rows(&s, "ci_opportunities", "salesforce", "id").await;
    assert_eq!(synced.len(), opportunities.len());
    for o in &opportunities {
        let row = &synced[&text(o, "Id")];
        assert_eq!(
            (&row["account_id"], &row["closed"]),
            (&o["AccountId"], &o["IsClosed"])
        );
    }
    let owners: BTreeSet<String> = accounts.iter().map(|a| text(a, "OwnerId")).collect();
    let team: BTreeSet<String> = rows(&s, "ci_team", "salesforce", "owner_id")
        .await
        .into_keys()
        .collect();
    assert_eq!(team, owners);

    // Conversations whose first participant is: a contact at an account with an open
    // opportunity; a contact at an account without one; a stranger at the first account's
    // domain; an open lead; nobody the CRM knows.
    let mut open: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in opportunities.iter().filter(|o| o["IsClosed"] == false) {
        open.entry(text(o, "AccountId"))
            .or_default()
            .insert(text(o, "Id"));
    }
    let with_opportunity = contacts
        .iter()
        .find(|c| open.contains_key(&text(c, "AccountId")))
        .expect("a contact at an account with an open opportunity");
    let without = contacts
        .iter()
        .find(|c| !open.contains_key(&text(c, "AccountId")))
        .expect("a contact at an account without one");
    let (open_account, _) = open.iter().next().unwrap();
    let open_domain = domain(&text(
        accounts
            .iter()
            .find(|a| text(a, "Id") == *open_account)
            .unwrap(),
        "Website",
    ));
    let lead = leads
        .iter()
        .find(|l| l["IsConverted"] == false)
        .expect("an open lead");
    let seeded = [
        conversation("conv-1", &text(with_opportunity, "Email")),
        conversation("conv-2", &text(without, "Email").to_uppercase()),
        conversation("conv-3", &format!("new.person@{open_domain}")),
        conversation("conv-4", &text(lead, "Email")),
        conversation("conv-5", "someone@unknown-company.example"),
    ];
    s.store
        .dataset_upsert("default", "conversations", &seeded)
        .await
        .unwrap();

    let matching = s
        .run(
            &example("conversation-sync/match.toml"),
            None,
            &[("crm", "salesforce")],
        )
        .await;
    assert!(matching.completed(), "{matching:?}");
    let matches = rows(&s, "ci_matches", "salesforce", "conversation_id").await;
    assert_eq!(matches.len(), 5, "{matches:#?}");
    let m = &matches["conv-1"];
    assert_eq!(
        (
            text(m, "matched_type"),
            text(m, "account_id"),
            text(m, "contact_id")
        ),
        (
            "opportunity".into(),
            text(with_opportunity, "AccountId"),
            text(with_opportunity, "Id")
        )
    );
    assert!(
        open[&text(with_opportunity, "AccountId")].contains(&text(m, "matched_id")),
        "{m}"
    );
    let m = &matches["conv-2"];
    assert_eq!(
        (
            text(m, "matched_type"),
            text(m, "matched_id"),
            text(m, "contact_id")
        ),
        (
            "account".into(),
            text(without, "AccountId"),
            text(without, "Id")
        )
    );
    let m = &matches["conv-3"];
    assert_eq!(
        (text(m, "matched_type"), text(m, "account_id")),
        ("opportunity".into(), open_account.clone())
    );
    assert!(
        open[open_account].contains(&text(m, "matched_id")) && m["contact_id"].is_null(),
        "{m}"
    );
    let m = &matches["conv-4"];
    assert_eq!(
        (text(m, "matched_type"), text(m, "matched_id")),
        ("lead".into(), text(lead, "Id"))
    );
    assert_eq!(matches["conv-5"]["matched_type"], "none");

    // The activities, written back after the match, twice: a replay duplicates nothing.
    for _ in 0..2 {
        let activities = s
            .run(
                &example("conversation-sync/salesforce/activities.toml"),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(activities.completed(), "{activities:?}");
        assert_eq!(step(&activities, "save-tasks").records_out, 4);
    }
    let tasks: BTreeMap<String, Value> = soql(
        &s,
        "SELECT Id, Subject, WhoId, WhatId, External_Id__c FROM Task",
    )
    .await
    .into_iter()
    .map(|t| (text(&t, "External_Id__c"), t))
    .collect();
    assert_eq!(
        tasks.keys().cloned().collect::<Vec<_>>(),
        ["conv-1", "conv-2", "conv-3", "conv-4"]
    );
    let linked = |conv: &str| (tasks[conv]["WhatId"].clone(), tasks[conv]["WhoId"].clone());
    assert_eq!(
        linked("conv-1"),
        (
            matches["conv-1"]["matched_id"].clone(),
            with_opportunity["Id"].clone()
        )
    );
    assert_eq!(
        linked("conv-2"),
        (without["AccountId"].clone(), without["Id"].clone())
    );
    assert_eq!(
        linked("conv-3"),
        (matches["conv-3"]["matched_id"].clone(), Value::Null)
    );
    assert_eq!(linked("conv-4"), (Value::Null, lead["Id"].clone()));
    assert_eq!(tasks["conv-1"]["Subject"], "Call conv-1");

    // Disconnect: nothing is deleted without the confirmation, everything with it.
    let kept = s
        .run(
            &example("conversation-sync/salesforce/disconnect.toml"),
            Some("sandbox"),
            &[],
        )
        .await;
    assert!(kept.completed(), "{kept:?}");
    assert_eq!(soql(&s, "SELECT Id FROM Task").await.len(), 4);
    let gone = s
        .run(
            &example("conversation-sync/salesforce/disconnect.toml"),
            Some("sandbox"),
            &[("delete_synced_data", "true")],
        )
        .await;
    assert!(gone.completed(), "{gone:?}");
    assert_eq!(step(&gone, "delete-tasks").records_out, 4);
    assert!(soql(&s, "SELECT Id FROM Task").await.is_empty());
    let cleared = s
        .run(
            &example("conversation-sync/disconnect.toml"),
            None,
            &[("crm", "salesforce"), ("delete_synced_data", "true")],
        )
        .await;
    assert!(cleared.completed(), "{cleared:?}");
    for dataset in [
        "ci_accounts",
        "ci_contacts",
        "ci_leads",
        "ci_opportunities",
        "ci_team",
        "ci_matches",
    ] {
        assert!(
            s.dataset(dataset)
                .await
                .iter()
                .all(|r| r["crm"] != "salesforce"),
            "{dataset} still holds Salesforce rows"
        );
    }
    assert_eq!(
        s.dataset("conversations").await.len(),
        5,
        "the conversations are the product's, not the CRM's"
    );
    eprintln!(
        "scenario 3 (salesforce): sync of {} records in {:?}; {} Salesforce requests in all",
        accounts.len() + contacts.len() + leads.len() + opportunities.len(),
        sync.took,
        s.sandbox.requests(Some(Vendor::Salesforce)).len()
    );
}

#[tokio::test]
async fn salesforce_sync_can_skip_team_data() {
    let s = start().await;
    let sync = s
        .run(
            &example("conversation-sync/salesforce/sync.toml"),
            Some("sandbox"),
            &[("sync_team_data", "false")],
        )
        .await;
    assert!(sync.completed(), "{sync:?}");
    assert!(s.dataset("ci_team").await.is_empty());
    assert_eq!(rows(&s, "ci_accounts", "salesforce", "id").await.len(), 20);
}

/// Seeds `conversations` with one conversation per participant email, `conv-0`, `conv-1`, ...
async fn seed(s: &Scenario, emails: &[String]) {
    let rows: Vec<(String, String)> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| conversation(&format!("conv-{i}"), e))
        .collect();
    s.store
        .dataset_upsert("default", "conversations", &rows)
        .await
        .unwrap();
}

/// Syncs `crm`, checks what each dataset got, and matches a conversation with a contact at an
/// account (`opportunity` when the account has an open deal, else `account`), one with a lead
/// when the CRM has leads, and a stranger's.
async fn sync_and_match(s: &Scenario, crm: &str, counts: [usize; 4]) -> BTreeMap<String, Value> {
    let sync = s
        .run(
            &example(&format!("conversation-sync/{crm}/sync.toml")),
            Some("sandbox"),
            &[],
        )
        .await;
    assert!(sync.completed(), "{sync:?}");
    let accounts = rows(s, "ci_accounts", crm, "id").await;
    let contacts = rows(s, "ci_contacts", crm, "id").await;
    let leads = rows(s, "ci_leads", crm, "id").await;
    let opportunities = rows(s, "ci_opportunities", crm, "id").await;
    assert_eq!(
        [
            accounts.len(),
            contacts.len(),
            leads.len(),
            opportunities.len()
        ],
        counts,
        "{crm}"
    );
    assert!(
        accounts.values().all(|a| a["domain"]
            .as_str()
            .is_some_and(|d| d.ends_with(".example"))),
        "{crm}: {accounts:?}"
    );
    let contact = contacts
        .values()
        .find(|c| {
            c["account_id"]
                .as_str()
                .is_some_and(|a| accounts.contains_key(a))
        })
        .expect("a contact at a synced account");
    let mut emails = vec![
        text(contact, "email"),
        "someone@unknown-company.example".to_owned(),
    ];
    emails.extend(leads.values().next().map(|l| text(l, "email")));
    seed(s, &emails).await;
    let matching = s
        .run(
            &example("conversation-sync/match.toml"),
            None,
            &[("crm", crm)],
        )
        .await;
    assert!(matching.completed(), "{matching:?}");
    let matches = rows(s, "ci_matches", crm, "conversation_id").await;
    let m = &matches["conv-0"];
    let account = text(contact, "account_id");
    let open: Vec<&Value> = opportunities
        .values()
        .filter(|o| o["account_id"] == account.as_str() && o["closed"] != true)
        .collect();
    assert_eq!(
        (text(m, "account_id"), text(m, "contact_id")),
        (account.clone(), text(contact, "id")),
        "{crm}: {m}"
    );
    if open.is_empty() {
        assert_eq!(
            (text(m, "matched_type"), text(m, "matched_id")),
            ("account".into(), account),
            "{crm}: {m}"
        );
    } else {
        assert_eq!(text(m, "matched_type"), "opportunity", "{crm}: {m}");
        assert!(
            open.iter().any(|o| o["id"] == m["matched_id"]),
            "{crm}: {m}"
        );
    }
    assert_eq!(matches["conv-1"]["matched_type"], "none");
    if let Some(lead) = leads.values().next() {
        assert_eq!(
            (
                text(&matches["conv-2"], "matched_type"),
                text(&matches["conv-2"], "matched_id")
            ),
            ("lead".into(), text(lead, "id")),
            "{crm}"
        );
    }
    eprintln!(
        "scenario 3 ({crm}): sync of {} records in {:?}",
        counts.iter().sum::<usize>(),
        sync.took
    );
    matches
}

#[tokio::test]
async fn hubspot_syncs_into_the_same_datasets_and_matches_accounts_and_leads() {
    let s = start().await;
    let hubspot = s.sandbox.vendor(Vendor::HubSpot).unwrap();
    let token = hubspot.credentials().api_token.unwrap();
    let http = reqwest::Client::new();
    // HubSpot's leads are contacts at the lead stage; the demo portal has none, so make one.
    let lead: Value = http
        .post(format!("{}/crm/v3/objects/contacts", hubspot.base_url()))
        .bearer_auth(&token)
        .json(&json!({"properties": {"email": "pat.prospect@prospects.example", "firstname": "Pat", "lastname": "Prospect", "lifecyclestage": "lead"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let matches = sync_and_match(&s, "hubspot", [20, 50, 1, 10]).await;
    assert_eq!(matches["conv-2"]["matched_id"], lead["id"]);
    // HubSpot deals carry no account here (no deal associations are read): the account is the match.
    let m = &matches["conv-0"];
    assert_eq!(m["matched_type"], "account");
    let upstream: Value = http
        .get(format!(
            "{}/crm/v3/objects/contacts/{}",
            hubspot.base_url(),
            text(m, "contact_id")
        ))
        .bearer_auth(&token)
        .query(&[("associations", "companies"), ("properties", "email")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(upstream["properties"]["email"], m["email"]);
    assert_eq!(
        upstream["associations"]["companies"]["results"][0]["id"],
        m["account_id"]
    );

    // Each match logged as a call, associated with its company and contact; a replay of both
    // jobs logs and links nothing twice.
    for _ in 0..2 {
        for flow in ["activities", "activity-associations"] {
            let report = s
                .run(
                    &example(&format!("conversation-sync/hubspot/{flow}.toml")),
                    Some("sandbox"),
                    &[],
                )
                .await;
            assert!(report.completed(), "{flow}: {report:?}");
        }
    }
    let calls: Value = http
        .get(format!("{}/crm/v3/objects/calls", hubspot.base_url()))
        .bearer_auth(&token)
        .query(&[
            ("associations", "companies,contacts"),
            (
                "properties",
                "weft_conversation_id,hs_call_title,hs_call_body,hs_timestamp",
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let calls = calls["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{calls}"));
    let matched: Vec<&Value> = matches
        .values()
        .filter(|m| m["matched_type"] != "none")
        .collect();
    assert_eq!(calls.len(), matched.len(), "{calls:#?}");
    let linked = |call: &Value, kind: &str| -> Vec<String> {
        let mut ids: Vec<String> = call["associations"][kind]["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.dedup();
        ids
    };
    for m in matched {
        let call = calls
            .iter()
            .find(|c| c["properties"]["weft_conversation_id"] == m["conversation_id"])
            .unwrap_or_else(|| panic!("no call for {m}"));
        assert_eq!(
            (
                &call["properties"]["hs_call_title"],
                &call["properties"]["hs_call_body"]
            ),
            (&m["title"], &m["summary"])
        );
        assert!(
            call["properties"]["hs_timestamp"]
                .as_str()
                .unwrap()
                .starts_with(m["date"].as_str().unwrap())
        );
        let companies: Vec<String> = m["account_id"]
            .as_str()
            .map(|a| vec![a.to_owned()])
            .unwrap_or_default();
        assert_eq!(linked(call, "companies"), companies, "{m}");
        let contacts: Vec<String> = m["who_id"]
            .as_str()
            .map(|w| vec![w.to_owned()])
            .unwrap_or_default();
        assert_eq!(linked(call, "contacts"), contacts, "{m}");
    }
}

#[tokio::test]
async fn dynamics365_syncs_into_the_same_datasets_and_matches_with_the_lead_fallback() {
    let s = start().await;
    let matches = sync_and_match(&s, "dynamics365", [20, 50, 20, 10]).await;
    let (bearer, service_root) = weft_tests::vendor::dataverse_session(&s.sandbox).await;
    let http = reqwest::Client::new();
    let m = &matches["conv-0"];
    let url = format!("{service_root}contacts({})", text(m, "contact_id"));
    let contact: Value = http
        .get(url)
        .bearer_auth(&bearer)
        .query(&[("$select", "emailaddress1,_parentcustomerid_value")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (
            &contact["emailaddress1"],
            &contact["_parentcustomerid_value"]
        ),
        (&m["email"], &m["account_id"])
    );

    // Each match logged as a phone call regarding the matched record; a replay adds none.
    let phonecalls = || async {
        let page: Value = http
            .get(format!("{service_root}phonecalls"))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        page["value"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .clone()
    };
    for _ in 0..2 {
        let report = s
            .run(
                &example("conversation-sync/dynamics365/activities.toml"),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(report.completed(), "{report:?}");
    }
    let calls = phonecalls().await;
    let matched: Vec<&Value> = matches
        .values()
        .filter(|m| m["matched_type"] != "none")
        .collect();
    assert_eq!(calls.len(), matched.len(), "{calls:#?}");
    for m in matched {
        let call = calls
            .iter()
            .find(|c| c["weft_conversationid"] == m["conversation_id"])
            .unwrap_or_else(|| panic!("no call for {m}"));
        assert_eq!(
            (
                &call["subject"],
                &call["description"],
                &call["scheduledend"]
            ),
            (&m["title"], &m["summary"], &m["date"])
        );
        assert_eq!(
            call["_regardingobjectid_value"], m["matched_id"],
            "regarding the matched {}",
            m["matched_type"]
        );
    }
}

#[tokio::test]
async fn monday_syncs_into_the_same_datasets_and_matches_accounts() {
    let s = start().await;
    // monday has no leads board: nothing to fall back to.
    let matches = sync_and_match(&s, "monday", [20, 50, 0, 10]).await;

    // Each match posted as an update on its item, once: the receipts keep a replay from
    // posting again.
    for _ in 0..2 {
        let report = s
            .run(
                &example("conversation-sync/monday/activities.toml"),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(report.completed(), "{report:?}");
    }
    let monday = s.sandbox.vendor(Vendor::Monday).unwrap();
    let token = monday.credentials().api_token.unwrap();
    let answer: Value = reqwest::Client::new()
        .post(format!("{}/v2", monday.base_url()))
        .header("Authorization", token)
        .json(&json!({"query": "query { updates(limit: 100) { id item_id body text_body } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let updates = answer["data"]["updates"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    let matched: Vec<&Value> = matches
        .values()
        .filter(|m| m["matched_type"] != "none")
        .collect();
    assert_eq!(updates.len(), matched.len(), "{updates:#?}");
    for m in matched {
        let update = updates
            .iter()
            .find(|u| u["item_id"] == m["matched_id"])
            .unwrap_or_else(|| panic!("no update on {m}"));
        assert!(
            update["text_body"]
                .as_str()
                .unwrap()
                .contains(m["summary"].as_str().unwrap()),
            "{update}"
        );
    }
    let receipts = s.dataset("ci_activity_receipts").await;
    assert_eq!(receipts.len(), updates.len());
    assert!(
        receipts
            .iter()
            .all(|r| updates.iter().any(|u| u["id"] == r["update_id"])),
        "{receipts:?}"
    );
}
