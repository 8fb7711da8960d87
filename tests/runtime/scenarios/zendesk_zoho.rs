//! Scenario 2: `examples/zendesk-zoho/`, the initial sync from Zoho CRM into Zendesk, selective
//! then bulk, checked through Zendesk's API against what the Zoho emulator holds.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_sandbox::{SandboxConfig, Vendor};
use weft_tests::scenario::{Scenario, example, step};

use super::{zendesk, zoho};

/// The records of `list` with an `external_id`, by it.
fn by_external_id(list: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in list {
        if let Some(x) = r["external_id"].as_str() {
            out.entry(x.to_owned()).or_default().push(r);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_makes_zoho_accounts_organizations_and_people_users() {
    let s = Scenario::start(SandboxConfig::default()).await;
    let sb = &s.sandbox;
    let (zoho, desk) = (zoho::Api::new(sb).await, zendesk::Api::new(sb));
    let fresh = zoho.create("Accounts", json!({"Account_Name": "Fresh Harbor Co", "Industry": "Retail", "Billing_Country": "DE"})).await;
    // A contact of the new account: Zendesk has neither, so only the lookup can put the user in
    // the organization (the demo users Zendesk has are in their organizations already).
    let newcomer = zoho.create("Contacts", json!({"First_Name": "Nia", "Last_Name": "Newcomer", "Email": "nia.newcomer@fresh-harbor.example", "Account_Name": {"id": fresh}})).await;
    let accounts = zoho.list("Accounts", "Account_Name,Industry").await;
    let known = accounts
        .iter()
        .find(|a| a["id"] != fresh)
        .expect("demo accounts")
        .clone();
    let orgs_before = desk.list("organizations").await;
    let setup = (
        sb.requests(Some(Vendor::Zendesk)).len(),
        sb.requests(Some(Vendor::Zoho)).len(),
    );
    let mut took = std::time::Duration::ZERO;
    assert!(
        orgs_before
            .iter()
            .any(|o| o["name"] == known["Account_Name"]),
        "Zendesk knows the demo companies already"
    );
    assert!(orgs_before.iter().all(|o| o["external_id"].is_null()));

    // Selective: two accounts by name, one Zendesk has already (linked), one it has not (created).
    let orgs_flow = example("zendesk-zoho/accounts-to-organizations.toml");
    let chosen = json!([known["Account_Name"], "Fresh Harbor Co"]).to_string();
    let report = s
        .run(&orgs_flow, Some("sandbox"), &[("organizations", &chosen)])
        .await;
    took += report.took;
    assert!(report.completed(), "{report:?}");
    assert_eq!(
        (
            step(&report, "chosen").records_out,
            step(&report, "save").records_out,
            step(&report, "save").failed
        ),
        (2, 2, 0)
    );
    let orgs = desk.list("organizations").await;
    assert_eq!(
        orgs.len(),
        orgs_before.len() + 1,
        "the known account is linked, not duplicated"
    );
    let linked = by_external_id(&orgs);
    assert_eq!(linked.len(), 2, "only the chosen accounts: {linked:?}");
    let created = linked[&fresh][0];
    assert_eq!(
        (&created["name"], &created["details"], &created["tags"]),
        (
            &json!("Fresh Harbor Co"),
            &json!("Retail"),
            &json!(["zoho"])
        )
    );
    let known_id = known["id"].as_str().unwrap();
    assert_eq!(linked[known_id][0]["name"], known["Account_Name"]);
    assert!(
        orgs_before
            .iter()
            .any(|o| o["id"] == linked[known_id][0]["id"]),
        "the existing organization got the external id"
    );

    // Bulk: every account, each exactly once.
    let report = s.run(&orgs_flow, Some("sandbox"), &[]).await;
    took += report.took;
    assert!(report.completed(), "{report:?}");
    let orgs = desk.list("organizations").await;
    assert_eq!(orgs.len(), orgs_before.len() + 1);
    let linked = by_external_id(&orgs);
    assert_eq!(linked.len(), accounts.len());
    for a in &accounts {
        let found = &linked[a["id"].as_str().unwrap()];
        assert_eq!(found.len(), 1, "account {} once", a["id"]);
        assert_eq!(
            (&found[0]["name"], &found[0]["details"]),
            (&a["Account_Name"], &a["Industry"])
        );
    }

    // People, contacts only first (module choice), then leads too.
    let people_flow = example("zendesk-zoho/people-to-users.toml");
    let contacts = zoho.list("Contacts", "Full_Name,Email,Account_Name").await;
    let leads = zoho.list("Leads", "Full_Name,Email").await;
    let users_before = desk.list("users").await;
    let report = s
        .run(&people_flow, Some("sandbox"), &[("sync_leads", "false")])
        .await;
    took += report.took;
    assert!(report.completed(), "{report:?}");
    assert_eq!(
        (
            step(&report, "save-contacts").records_out,
            step(&report, "chosen-leads").records_out
        ),
        (contacts.len() as u64, 0)
    );
    let users = desk.list("users").await;
    let tagged = |users: &[Value], tag: &str| {
        users
            .iter()
            .filter(|u| {
                u["tags"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(tag)))
            })
            .count()
    };
    assert_eq!(
        tagged(&users, "zoho-lead"),
        0,
        "no lead synced with sync_leads=false"
    );
    let report = s.run(&people_flow, Some("sandbox"), &[]).await;
    took += report.took;
    assert!(report.completed(), "{report:?}");
    let users = desk.list("users").await;
    let people = by_external_id(&users);
    let org_of: BTreeMap<&str, &Value> = orgs
        .iter()
        .filter_map(|o| Some((o["external_id"].as_str()?, &o["id"])))
        .collect();
    for c in &contacts {
        let found = &people[c["id"].as_str().unwrap()];
        assert_eq!(found.len(), 1, "contact {} once", c["id"]);
        let u = found[0];
        assert_eq!(
            (&u["name"], &u["email"], u["role"].as_str()),
            (&c["Full_Name"], &c["Email"], Some("end-user"))
        );
        assert_eq!(
            &u["organization_id"],
            org_of[c["Account_Name"]["id"].as_str().unwrap()],
            "contact {} in its account's organization",
            c["id"]
        );
    }
    let fresh_org = &org_of[fresh.as_str()];
    assert_eq!(
        &people[&newcomer][0]["organization_id"], *fresh_org,
        "the new contact is in the new account's organization"
    );
    assert!(
        !users_before
            .iter()
            .any(|u| u["email"] == "nia.newcomer@fresh-harbor.example")
    );
    for l in &leads {
        let found = &people[l["id"].as_str().unwrap()];
        assert_eq!(found.len(), 1, "lead {} once", l["id"]);
        assert_eq!(
            (&found[0]["name"], &found[0]["email"]),
            (&l["Full_Name"], &l["Email"])
        );
    }
    // Matched by email where Zendesk had the person already: no duplicates.
    let emails_before: std::collections::BTreeSet<&str> = users_before
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    let new_people = contacts
        .iter()
        .chain(&leads)
        .filter(|p| !emails_before.contains(p["Email"].as_str().unwrap()))
        .count();
    assert_eq!(users.len(), users_before.len() + new_people);
    assert_eq!(tagged(&users, "zoho-lead"), leads.len());
    // The test's own calls (listing, checking) are in the log too: an upper bound for the runs.
    eprintln!(
        "scenario 2 (initial sync, 4 runs): {:.2} s, at most {} requests to Zendesk and {} to Zoho",
        took.as_secs_f64(),
        sb.requests(Some(Vendor::Zendesk)).len() - setup.0,
        sb.requests(Some(Vendor::Zoho)).len() - setup.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_moves_only_what_changed_in_zoho_since_the_last_run() {
    let s = Scenario::start(SandboxConfig::default()).await;
    let sb = &s.sandbox;
    let (zoho, desk) = (zoho::Api::new(sb).await, zendesk::Api::new(sb));
    let flow = example("zendesk-zoho/changes-to-zendesk.toml");
    let accounts = zoho.list("Accounts", "Account_Name").await;
    let contacts = zoho.list("Contacts", "Email").await;

    // The first run has no cursor: everything.
    let first = s.run(&flow, Some("sandbox"), &[]).await;
    assert!(first.completed(), "{first:?}");
    assert_eq!(
        (
            step(&first, "save-organizations").records_out,
            step(&first, "save-users").records_out
        ),
        (accounts.len() as u64, contacts.len() as u64)
    );

    // Nothing changed: nothing written.
    let idle = s.run(&flow, Some("sandbox"), &[]).await;
    assert!(idle.completed(), "{idle:?}");
    assert_eq!(
        (
            step(&idle, "save-organizations").records_in,
            step(&idle, "save-users").records_in
        ),
        (0, 0)
    );

    // One account renamed and one contact's phone changed in Zoho: those two, nothing else.
    let (account, contact) = (
        accounts[3]["id"].as_str().unwrap(),
        contacts[7]["id"].as_str().unwrap(),
    );
    let (status, answer) = zoho
        .call(
            reqwest::Method::PUT,
            "/crm/v7/Accounts",
            Some(json!({"data": [{"id": account, "Account_Name": "Renamed In Zoho Ltd"}]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = zoho
        .call(
            reqwest::Method::PUT,
            "/crm/v7/Contacts",
            Some(json!({"data": [{"id": contact, "Phone": "+1 555 000 7777"}]})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let before = sb.requests(Some(Vendor::Zendesk)).len();
    let changed = s.run(&flow, Some("sandbox"), &[]).await;
    assert!(changed.completed(), "{changed:?}");
    assert_eq!(
        (
            step(&changed, "save-organizations").records_out,
            step(&changed, "save-users").records_out
        ),
        (1, 1)
    );
    let orgs = by_external_id_owned(desk.list("organizations").await);
    assert_eq!(orgs[account]["name"], "Renamed In Zoho Ltd");
    assert_eq!(orgs.len(), accounts.len(), "every account still once");
    let users = by_external_id_owned(desk.list("users").await);
    assert_eq!(users[contact]["phone"], "+1 555 000 7777");
    eprintln!(
        "scenario 2 (catch-up of 2 changes): {:.3} s, {} requests to Zendesk",
        changed.took.as_secs_f64(),
        sb.requests(Some(Vendor::Zendesk)).len() - before
    );
}

fn by_external_id_owned(list: Vec<Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for r in list {
        if let Some(x) = r["external_id"].as_str().map(str::to_owned) {
            assert!(out.insert(x.clone(), r).is_none(), "external id {x} twice");
        }
    }
    out
}

/// The Zoho record id a Zendesk user was synced from, and whether it is a contact or a lead.
fn synced_from(user: &Value) -> Option<(String, &'static str)> {
    let id = user["external_id"].as_str()?.to_owned();
    let tags = user["tags"].as_array()?;
    if tags.iter().any(|t| t == "zoho-contact") {
        Some((id, "Contact"))
    } else if tags.iter().any(|t| t == "zoho-lead") {
        Some((id, "Lead"))
    } else {
        None
    }
}

const TICKET_FIELDS: &str = "Name,Zendesk_Ticket_Id,Status,Priority,Type,Tags,Requester_Email,Account,Contact,Lead,Description";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickets_and_comments_land_in_zoho_related_and_a_ticket_from_zoho_reaches_zendesk() {
    let s = Scenario::start(SandboxConfig::default()).await;
    let sb = &s.sandbox;
    let (zoho, desk) = (zoho::Api::new(sb).await, zendesk::Api::new(sb));
    for flow in ["accounts-to-organizations", "people-to-users"] {
        let report = s
            .run(
                &example(&format!("zendesk-zoho/{flow}.toml")),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(report.completed(), "{flow}: {report:?}");
    }
    let users: BTreeMap<String, Value> = desk
        .list("users")
        .await
        .into_iter()
        .map(|u| (u["id"].to_string(), u))
        .collect();
    let orgs: BTreeMap<String, Value> = desk
        .list("organizations")
        .await
        .into_iter()
        .map(|o| (o["id"].to_string(), o))
        .collect();
    // A ticket from a person synced from a Zoho lead, so that one relates to a Lead.
    let lead_user = users
        .values()
        .find(|u| synced_from(u).is_some_and(|(_, kind)| kind == "Lead"))
        .expect("a lead synced as a user")
        .clone();
    let (status, answer) = desk
        .call(reqwest::Method::POST, "/api/v2/tickets.json", Some(json!({"ticket": {"subject": "Pricing question", "comment": {"body": "How much for 40 seats?"}, "requester_id": lead_user["id"], "priority": "low", "tags": ["pricing"]}})))
        .await;
    assert_eq!(status, 201, "{answer}");
    // Zendesk's incremental export leaves out the last minute.
    sb.advance_clock(std::time::Duration::from_secs(61));
    let tickets = desk.list("tickets").await;

    let tickets_flow = example("zendesk-zoho/tickets-to-zoho.toml");
    let report = s.run(&tickets_flow, Some("sandbox"), &[]).await;
    assert!(report.completed(), "{report:?}");
    assert_eq!(
        (
            step(&report, "save").records_out,
            step(&report, "save").failed
        ),
        (tickets.len() as u64, 0)
    );
    let in_zoho: BTreeMap<String, Value> = zoho
        .list("Zendesk_Tickets", TICKET_FIELDS)
        .await
        .into_iter()
        .map(|t| (t["Zendesk_Ticket_Id"].as_str().unwrap().to_owned(), t))
        .collect();
    assert_eq!(in_zoho.len(), tickets.len());
    let mut related = BTreeMap::<&str, usize>::new();
    for t in &tickets {
        let z = &in_zoho[&t["id"].to_string()];
        assert_eq!(
            (&z["Name"], &z["Status"], &z["Priority"], &z["Tags"]),
            (&t["subject"], &t["status"], &t["priority"], &t["tags"]),
            "{z}"
        );
        let requester = &users[&t["requester_id"].to_string()];
        assert_eq!(z["Requester_Email"], requester["email"]);
        match synced_from(requester) {
            Some((id, kind)) => {
                assert_eq!(
                    z[kind]["id"],
                    id.as_str(),
                    "ticket {} relates to its requester's {kind}",
                    t["id"]
                );
                *related.entry(kind).or_default() += 1;
            }
            None => assert!(z["Contact"].is_null() && z["Lead"].is_null(), "{z}"),
        }
        match orgs
            .get(&t["organization_id"].to_string())
            .and_then(|o| o["external_id"].as_str())
        {
            Some(account) => {
                assert_eq!(z["Account"]["id"], account);
                *related.entry("Account").or_default() += 1;
            }
            None => assert!(z["Account"].is_null(), "{z}"),
        }
    }
    assert!(
        related["Contact"] > 0 && related["Lead"] == 1 && related["Account"] > 0,
        "{related:?}"
    );

    // An updated ticket: only it moves, and its Zoho record changes in place.
    let updated = &tickets[2];
    let (status, answer) = desk
        .call(
            reqwest::Method::PUT,
            &format!("/api/v2/tickets/{}.json", updated["id"]),
            Some(json!({"ticket": {"status": "solved", "priority": "urgent"}})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    sb.advance_clock(std::time::Duration::from_secs(61));
    let again = s.run(&tickets_flow, Some("sandbox"), &[]).await;
    assert!(again.completed(), "{again:?}");
    assert_eq!(step(&again, "save").records_out, 1);
    let now_in_zoho = zoho.list("Zendesk_Tickets", TICKET_FIELDS).await;
    assert_eq!(now_in_zoho.len(), tickets.len(), "updated, not added");
    let z = now_in_zoho
        .iter()
        .find(|z| z["Zendesk_Ticket_Id"] == updated["id"].to_string().as_str())
        .unwrap();
    assert_eq!(
        (&z["Status"], &z["Priority"]),
        (&json!("solved"), &json!("urgent"))
    );

    // Comments, each related to its ticket's Zoho record; a re-run adds none.
    let comments_flow = example("zendesk-zoho/comments-to-zoho.toml");
    let report = s.run(&comments_flow, Some("sandbox"), &[]).await;
    assert!(report.completed(), "{report:?}");
    let mut expected = 0;
    for t in &tickets {
        let (status, answer) = desk
            .call(
                reqwest::Method::GET,
                &format!("/api/v2/tickets/{}/comments.json", t["id"]),
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        expected += answer["comments"].as_array().unwrap().len();
    }
    assert!(
        expected > tickets.len(),
        "the demo tickets have several comments each"
    );
    let ticket_ids: BTreeMap<String, String> = now_in_zoho
        .iter()
        .map(|z| {
            (
                z["id"].as_str().unwrap().to_owned(),
                z["Zendesk_Ticket_Id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let comments = zoho
        .list("Zendesk_Comments", "Name,Zendesk_Comment_Id,Ticket,Body")
        .await;
    assert_eq!(comments.len(), expected);
    let first = &tickets[0];
    let (_, listed) = desk
        .call(
            reqwest::Method::GET,
            &format!("/api/v2/tickets/{}/comments.json", first["id"]),
            None,
        )
        .await;
    for c in listed["comments"].as_array().unwrap() {
        let z = comments
            .iter()
            .find(|z| z["Zendesk_Comment_Id"] == c["id"].to_string().as_str())
            .expect("the comment is in Zoho");
        assert_eq!(z["Body"], c["body"]);
        assert_eq!(
            ticket_ids[z["Ticket"]["id"].as_str().unwrap()],
            first["id"].to_string(),
            "related to its ticket"
        );
    }
    let replay = s.run(&comments_flow, Some("sandbox"), &[]).await;
    assert!(replay.completed(), "{replay:?}");
    assert_eq!(
        zoho.list("Zendesk_Comments", "Zendesk_Comment_Id")
            .await
            .len(),
        expected
    );

    // A ticket created from a Zoho contact: it becomes a Zendesk ticket, whose id comes back.
    let contact_user = users
        .values()
        .find(|u| synced_from(u).is_some_and(|(_, kind)| kind == "Contact"))
        .unwrap();
    let (contact_id, _) = synced_from(contact_user).unwrap();
    let request = zoho
        .create(
            "Zendesk_Tickets",
            json!({"Name": "Replace the broken unit", "Description": "Raised by the account manager from the contact's page.", "Requester_Email": contact_user["email"], "Priority": "high", "Type": "task", "Status": "open", "Tags": ["from-zoho"], "Contact": {"id": contact_id}}),
        )
        .await;
    let report = s
        .run(
            &example("zendesk-zoho/zoho-tickets-to-zendesk.toml"),
            Some("sandbox"),
            &[],
        )
        .await;
    assert!(report.completed(), "{report:?}");
    assert_eq!(
        (
            step(&report, "new-in-zoho").records_out,
            step(&report, "create").records_out
        ),
        (1, 1),
        "only the record without a Zendesk id"
    );
    let created: Vec<Value> = desk
        .list("tickets")
        .await
        .into_iter()
        .filter(|t| t["external_id"] == request.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{created:?}");
    let t = &created[0];
    assert_eq!(
        (&t["subject"], &t["description"], &t["requester_id"]),
        (
            &json!("Replace the broken unit"),
            &json!("Raised by the account manager from the contact's page."),
            &contact_user["id"]
        )
    );
    assert_eq!(
        (&t["priority"], &t["type"], &t["status"], &t["tags"]),
        (
            &json!("high"),
            &json!("task"),
            &json!("open"),
            &json!(["from-zoho"])
        )
    );
    sb.advance_clock(std::time::Duration::from_secs(61));
    let back = s.run(&tickets_flow, Some("sandbox"), &[]).await;
    assert!(back.completed(), "{back:?}");
    assert_eq!(
        (
            step(&back, "save-linked").records_out,
            step(&back, "save").records_in
        ),
        (1, 0)
    );
    let all = zoho.list("Zendesk_Tickets", TICKET_FIELDS).await;
    assert_eq!(
        all.len(),
        tickets.len() + 1,
        "the Zoho record was linked, not duplicated"
    );
    let linked = all.iter().find(|z| z["id"] == request.as_str()).unwrap();
    assert_eq!(linked["Zendesk_Ticket_Id"], t["id"].to_string().as_str());
    // Changed by the write-back, the record is read again, and has its Zendesk id now.
    let quiet = s
        .run(
            &example("zendesk-zoho/zoho-tickets-to-zendesk.toml"),
            Some("sandbox"),
            &[],
        )
        .await;
    assert!(quiet.completed(), "{quiet:?}");
    assert_eq!(step(&quiet, "create").records_in, 0);
    assert_eq!(desk.list("tickets").await.len(), tickets.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_deletes_what_the_integration_created_and_unlinks_what_it_found() {
    let s = Scenario::start(SandboxConfig::default()).await;
    let sb = &s.sandbox;
    let (zoho, desk) = (zoho::Api::new(sb).await, zendesk::Api::new(sb));
    // An account and a contact Zendesk does not have: the sync creates them.
    let fresh = zoho
        .create(
            "Accounts",
            json!({"Account_Name": "Fresh Harbor Co", "Industry": "Retail"}),
        )
        .await;
    zoho.create("Contacts", json!({"First_Name": "Nia", "Last_Name": "Newcomer", "Email": "nia.newcomer@fresh-harbor.example", "Account_Name": {"id": fresh}})).await;
    let ids = |list: Vec<Value>| {
        list.into_iter()
            .map(|r| r["id"].to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let (orgs_before, users_before) = (
        ids(desk.list("organizations").await),
        ids(desk.list("users").await),
    );
    for flow in ["accounts-to-organizations", "people-to-users"] {
        let report = s
            .run(
                &example(&format!("zendesk-zoho/{flow}.toml")),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(report.completed(), "{flow}: {report:?}");
    }
    sb.advance_clock(std::time::Duration::from_secs(61));
    for flow in ["tickets-to-zoho", "comments-to-zoho"] {
        let report = s
            .run(
                &example(&format!("zendesk-zoho/{flow}.toml")),
                Some("sandbox"),
                &[],
            )
            .await;
        assert!(report.completed(), "{flow}: {report:?}");
    }
    let requester = desk
        .list("users")
        .await
        .into_iter()
        .find(|u| {
            u["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "zoho-contact"))
        })
        .unwrap();
    zoho.create("Zendesk_Tickets", json!({"Name": "From Zoho", "Description": "Made in Zoho.", "Requester_Email": requester["email"]})).await;
    assert!(
        s.run(
            &example("zendesk-zoho/zoho-tickets-to-zendesk.toml"),
            Some("sandbox"),
            &[]
        )
        .await
        .completed()
    );
    let synced_orgs = desk.list("organizations").await;
    let synced_users = desk.list("users").await;
    assert!(
        synced_orgs.len() > orgs_before.len() && synced_users.len() > users_before.len(),
        "the sync created some"
    );
    let (zoho_tickets, zoho_comments) = (
        zoho.list("Zendesk_Tickets", "Name").await.len(),
        zoho.list("Zendesk_Comments", "Name").await.len(),
    );
    assert!(zoho_tickets > 0 && zoho_comments > 0);
    let tickets = desk.list("tickets").await.len();

    // Not confirmed: nothing is removed.
    let uninstall = example("zendesk-zoho/uninstall.toml");
    let dry = s.run(&uninstall, Some("sandbox"), &[]).await;
    assert!(dry.completed(), "{dry:?}");
    assert_eq!(
        (
            zoho.list("Zendesk_Tickets", "Name").await.len(),
            desk.list("organizations").await.len()
        ),
        (zoho_tickets, synced_orgs.len())
    );

    let report = s
        .run(&uninstall, Some("sandbox"), &[("confirm", "true")])
        .await;
    assert!(report.completed(), "{report:?}");
    assert!(
        zoho.list("Zendesk_Tickets", "Name").await.is_empty()
            && zoho.list("Zendesk_Comments", "Name").await.is_empty(),
        "Zoho's integration modules are emptied"
    );
    // Zendesk is back to what it had: created records deleted, found ones unlinked.
    let orgs = desk.list("organizations").await;
    assert_eq!(ids(orgs.clone()), orgs_before);
    assert!(orgs.iter().all(|o| o["external_id"].is_null()), "{orgs:?}");
    let users = desk.list("users").await;
    assert_eq!(ids(users.clone()), users_before);
    assert!(users.iter().all(|u| u["external_id"].is_null()));
    assert!(
        step(&report, "unlink-organizations").records_out > 0
            && step(&report, "delete-organizations").records_out == 1
    );
    assert_eq!(
        desk.list("tickets").await.len(),
        tickets,
        "tickets stay unless delete_tickets"
    );

    // A replay finds nothing left to do and succeeds.
    let again = s
        .run(
            &uninstall,
            Some("sandbox"),
            &[("confirm", "true"), ("delete_tickets", "true")],
        )
        .await;
    assert!(again.completed(), "{again:?}");
    assert_eq!(
        desk.list("tickets").await.len(),
        tickets - 1,
        "the ticket made from Zoho is deleted on request"
    );
}
