//! Scenario 1: `examples/zoho-customer-success/`, four chained jobs from Zoho CRM into the
//! customer-success datasets, run in chain order against a fresh sandbox; the datasets are then
//! checked against what the Zoho emulator holds.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use weft_sandbox::{SandboxConfig, Vendor};
use weft_tests::scenario::{Scenario, example, step};

use super::zoho;

const FLOWS: &str = "zoho-customer-success";

/// The flows of the example in the order their `after` chains run them; the scheduled job
/// (the head of the chain) first.
fn chain_order() -> Vec<(String, std::path::PathBuf, weft_flow::Flow)> {
    let mut flows: Vec<(String, std::path::PathBuf, weft_flow::Flow)> =
        std::fs::read_dir(example(FLOWS))
            .expect("the example directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                let flow = weft_flow::load(&p).unwrap_or_else(|e| panic!("{e}"));
                (flow.file.name.get_ref().to_string(), p, flow)
            })
            .collect();
    flows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut done: Vec<String> = Vec::new();
    let mut ordered = Vec::new();
    while !flows.is_empty() {
        let ready = flows
            .iter()
            .position(|(_, _, f)| {
                f.file
                    .after
                    .iter()
                    .all(|a| done.contains(&a.get_ref().as_str().to_owned()))
            })
            .unwrap_or_else(|| {
                panic!(
                    "the chain has a cycle or names a missing flow among {:?}",
                    flows.iter().map(|f| &f.0).collect::<Vec<_>>()
                )
            });
        let next = flows.remove(ready);
        done.push(next.0.clone());
        ordered.push(next);
    }
    ordered
}

fn by<'a>(records: &'a [Value], key: &str) -> BTreeMap<String, &'a Value> {
    records
        .iter()
        .map(|r| {
            (
                r[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} in {r}"))
                    .to_owned(),
                r,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_jobs_fill_the_customer_success_datasets_from_zoho() {
    let s = Scenario::start(SandboxConfig::default()).await;
    let sb = &s.sandbox;
    let api = zoho::Api::new(sb).await;

    // Records the jobs must refuse, created upstream the way a user would: an account with a
    // country name instead of an ISO code, a deal on that account, and a deal with no amount.
    let bad_account = api
        .create(
            "Accounts",
            json!({"Account_Name": "Nowhere Trading", "Billing_Country": "Germany"}),
        )
        .await;
    let orphan_deal = api.create("Deals", json!({"Deal_Name": "Nowhere - Pilot", "Stage": "Qualification", "Amount": 1500, "Account_Name": {"id": bad_account}})).await;
    let accounts_before = api.list("Accounts", "Account_Name").await;
    let good_account = accounts_before
        .iter()
        .find(|a| a["id"] != bad_account)
        .expect("demo accounts")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let zero_deal = api.create("Deals", json!({"Deal_Name": "Zero - Pilot", "Stage": "Qualification", "Amount": 0, "Account_Name": {"id": good_account}})).await;

    // The chain: the scheduled accounts job first, deals after both jobs it depends on.
    let chain = chain_order();
    let names: Vec<&str> = chain.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"zoho-accounts"), "{names:?}");
    assert_eq!(names.len(), 4, "a job per Zoho object: {names:?}");
    let after: BTreeMap<&str, BTreeSet<&str>> = chain
        .iter()
        .map(|(n, _, f)| {
            (
                n.as_str(),
                f.file.after.iter().map(|a| a.get_ref().as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        after["zoho-deals"],
        BTreeSet::from(["zoho-accounts", "zoho-contacts"]),
        "deals need the accounts and contacts datasets"
    );
    assert_eq!(
        (&after["zoho-contacts"], &after["zoho-leads"]),
        (
            &BTreeSet::from(["zoho-accounts"]),
            &BTreeSet::from(["zoho-accounts"])
        )
    );
    let head = &chain[0].2;
    let schedule = head
        .file
        .trigger
        .as_ref()
        .and_then(|t| t.get_ref().schedule.as_ref())
        .expect("the chain's head is scheduled");
    assert_eq!(
        schedule.get_ref().every.as_ref().map(|e| e.get_ref().0),
        Some(std::time::Duration::from_secs(4 * 3_600))
    );
    assert!(
        chain[1..]
            .iter()
            .all(|(_, _, f)| f.file.trigger.is_none() && !f.file.after.is_empty()),
        "the other jobs only run chained"
    );

    let setup_requests = sb.requests(Some(Vendor::Zoho)).len();
    let mut reports = BTreeMap::new();
    let mut records_moved = 0u64;
    for (name, path, _) in &chain {
        let report = s.run(path, Some("sandbox"), &[]).await;
        assert!(report.completed(), "{name}: {report:?}");
        records_moved += report
            .steps
            .iter()
            .filter(|st| st.step == "save")
            .map(|st| st.records_out)
            .sum::<u64>();
        reports.insert(name.clone(), report);
    }
    let took: std::time::Duration = reports.values().map(|r| r.took).sum();
    let requests = sb.requests(Some(Vendor::Zoho)).len() - setup_requests;
    eprintln!(
        "scenario 1: {records_moved} records written in {:.2} s ({:.0} records/s), {requests} requests to the Zoho emulator by the four runs",
        took.as_secs_f64(),
        records_moved as f64 / took.as_secs_f64()
    );

    // What Zoho holds now.
    let accounts = api
        .list(
            "Accounts",
            "Account_Name,Industry,Billing_Country,Billing_City,Website,Employees,Account_Type",
        )
        .await;
    let contacts = api
        .list(
            "Contacts",
            "First_Name,Last_Name,Full_Name,Email,Account_Name",
        )
        .await;
    let leads = api
        .list("Leads", "Full_Name,Email,Company,Lead_Status")
        .await;
    let deals = api
        .list(
            "Deals",
            "Deal_Name,Amount,Stage,Closing_Date,Account_Name,Contact_Name",
        )
        .await;
    let size = sb.data().size;
    assert_eq!(
        (accounts.len(), contacts.len(), leads.len(), deals.len()),
        (
            size.companies as usize + 1,
            size.contacts as usize,
            size.leads as usize,
            size.deals as usize + 2
        )
    );

    // Accounts: every one but the rejected, fields mapped directly.
    let cs_accounts = s.dataset("cs_accounts").await;
    assert_eq!(cs_accounts.len(), accounts.len() - 1);
    let kept = by(&cs_accounts, "account_id");
    assert!(!kept.contains_key(&bad_account));
    for a in accounts.iter().filter(|a| a["id"] != bad_account) {
        let row = kept[a["id"].as_str().unwrap()];
        for (ours, theirs) in [
            ("name", "Account_Name"),
            ("industry", "Industry"),
            ("country", "Billing_Country"),
            ("city", "Billing_City"),
            ("website", "Website"),
            ("employees", "Employees"),
            ("account_type", "Account_Type"),
        ] {
            assert_eq!(row[ours], a[theirs], "{ours} of account {}", a["id"]);
        }
        assert_eq!(row["source"], "zoho");
    }
    let accounts_run = &reports["zoho-accounts"];
    assert_eq!(
        (
            step(accounts_run, "accounts").records_out,
            step(accounts_run, "checked").failed,
            step(accounts_run, "save").records_out
        ),
        (accounts.len() as u64, 1, accounts.len() as u64 - 1)
    );
    let errors = s.store.run_errors(&accounts_run.id).await.unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].step, "checked");
    assert!(
        errors[0].error.contains("Billing_Country") && errors[0].error.contains("Germany"),
        "{}",
        errors[0].error
    );
    let rejected: Value = serde_json::from_str(errors[0].record.as_deref().unwrap()).unwrap();
    assert_eq!(rejected["id"], bad_account.as_str());

    // Contacts: all of them, with their account's id.
    let cs_contacts = s.dataset("cs_contacts").await;
    assert_eq!(cs_contacts.len(), contacts.len());
    let people = by(&cs_contacts, "contact_id");
    for c in &contacts {
        let row = people[c["id"].as_str().unwrap()];
        assert_eq!(
            (&row["full_name"], &row["email"], &row["account_id"]),
            (&c["Full_Name"], &c["Email"], &c["Account_Name"]["id"])
        );
    }

    // Leads: the case fields from the status picklist.
    let cs_leads = s.dataset("cs_leads").await;
    assert_eq!(cs_leads.len(), leads.len());
    let prospects = by(&cs_leads, "lead_id");
    let mut stages = BTreeSet::new();
    for l in &leads {
        let row = prospects[l["id"].as_str().unwrap()];
        let (stage, status) = match l["Lead_Status"].as_str().unwrap() {
            "Not Contacted" => ("New", "Active"),
            "Attempted to Contact" | "Contacted" => ("Open", "Active"),
            "Qualified" => ("Closed", "Inactive"),
            other => panic!("a lead status the demo data does not have: {other}"),
        };
        assert_eq!(
            (row["stage"].as_str(), row["status"].as_str()),
            (Some(stage), Some(status)),
            "lead {}",
            l["id"]
        );
        stages.insert(stage);
    }
    assert_eq!(stages.len(), 3, "the demo leads cover every stage");

    // Deals: merged with their account, status from the stage, contact id looked up; the deal on
    // the rejected account and the zero-amount deal in the error log with why.
    let cs_deals = s.dataset("cs_opportunities").await;
    assert_eq!(cs_deals.len(), deals.len() - 2);
    let opportunities = by(&cs_deals, "deal_id");
    assert!(!opportunities.contains_key(&orphan_deal) && !opportunities.contains_key(&zero_deal));
    let account = by(&accounts, "id");
    let mut with_contact = 0;
    for d in deals
        .iter()
        .filter(|d| d["id"] != orphan_deal && d["id"] != zero_deal)
    {
        let row = opportunities[d["id"].as_str().unwrap()];
        let a = account[d["Account_Name"]["id"].as_str().unwrap()];
        assert_eq!(
            (&row["deal"], &row["amount"], &row["stage"], &row["closing"]),
            (
                &d["Deal_Name"],
                &d["Amount"],
                &d["Stage"],
                &d["Closing_Date"]
            )
        );
        assert_eq!(row["account_id"], a["id"]);
        assert_eq!(
            (
                &row["account_name"],
                &row["account_industry"],
                &row["account_country"]
            ),
            (&a["Account_Name"], &a["Industry"], &a["Billing_Country"]),
            "deal {}",
            d["id"]
        );
        let status = if d["Stage"].as_str().unwrap().starts_with("Closed") {
            "Inactive"
        } else {
            "Active"
        };
        assert_eq!(
            row["status"], status,
            "deal {} in stage {}",
            d["id"], d["Stage"]
        );
        // The derived id: the one contact of the deal's account with the deal's contact's name.
        let expected = match d["Contact_Name"]["name"].as_str() {
            None => Value::Null,
            Some(name) => {
                let matches: Vec<&Value> = contacts
                    .iter()
                    .filter(|c| c["Full_Name"] == name && c["Account_Name"]["id"] == a["id"])
                    .collect();
                assert_eq!(
                    matches.len(),
                    1,
                    "the demo data has one {name} at {}",
                    a["Account_Name"]
                );
                matches[0]["id"].clone()
            }
        };
        assert_eq!(row["contact_id"], expected, "contact of deal {}", d["id"]);
        assert_eq!(
            row["contact_id"], d["Contact_Name"]["id"],
            "the lookup finds the contact Zoho links"
        );
        with_contact += usize::from(!expected.is_null());
    }
    assert!(with_contact > 0, "some deals have a contact to look up");
    let deals_run = &reports["zoho-deals"];
    assert_eq!(
        step(deals_run, "accounts").records_out,
        cs_accounts.len() as u64,
        "the deals job reads what the accounts job kept"
    );
    let errors = s.store.run_errors(&deals_run.id).await.unwrap();
    let reasons: BTreeMap<String, (String, String)> = errors
        .iter()
        .map(|e| {
            let record: Value = serde_json::from_str(e.record.as_deref().unwrap()).unwrap();
            let id = record
                .get("deal_id")
                .or(record.get("id"))
                .and_then(Value::as_str)
                .unwrap()
                .to_owned();
            (id, (e.step.clone(), e.error.clone()))
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{errors:?}");
    let (step_of, why) = &reasons[&zero_deal];
    assert!(
        step_of == "checked" && why.contains("Amount"),
        "{step_of}: {why}"
    );
    let (step_of, why) = &reasons[&orphan_deal];
    assert!(
        step_of == "with-accounts" && why.contains("no lookup record matches on account_id"),
        "{step_of}: {why}"
    );
}
