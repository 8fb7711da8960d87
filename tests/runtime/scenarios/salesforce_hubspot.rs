//! Scenario 4: Salesforce accounts, contacts and leads into HubSpot, with contact-company
//! associations (`examples/salesforce-hubspot/`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use weft_sandbox::{SandboxConfig, Vendor};
use weft_tests::scenario::{Scenario, example, step};

/// A Salesforce record as the emulator holds it, through the admin API (not through weft).
async fn salesforce_record(s: &Scenario, object: &str, id: &str) -> Value {
    let url = format!(
        "{}/admin/vendors/salesforce/records/{object}/{id}",
        s.sandbox.admin_url()
    );
    let resp = reqwest::get(&url).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap()
}

/// Every object of a HubSpot type through HubSpot's own list API, with `properties` and, for
/// contacts, their company associations.
async fn hubspot_objects(
    s: &Scenario,
    kind: &str,
    properties: &str,
    associations: Option<&str>,
) -> Vec<Value> {
    let hubspot = s.sandbox.vendor(Vendor::HubSpot).unwrap();
    let token = hubspot.credentials().api_token.unwrap();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![
            ("limit", "100".to_owned()),
            ("properties", properties.to_owned()),
        ];
        query.extend(associations.map(|a| ("associations", a.to_owned())));
        query.extend(after.clone().map(|a| ("after", a)));
        let page: Value = reqwest::Client::new()
            .get(format!("{}/crm/v3/objects/{kind}", hubspot.base_url()))
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        out.extend(page["results"].as_array().unwrap().iter().cloned());
        match page["paging"]["next"]["after"].as_str() {
            Some(a) => after = Some(a.to_owned()),
            None => return out,
        }
    }
}

fn bare_domain(website: &str) -> String {
    website
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_start_matches("www.")
        .trim_end_matches('/')
        .to_lowercase()
}

/// Starts a sandbox whose HubSpot portal is empty, so everything in it afterwards was imported.
async fn start() -> Scenario {
    let s = Scenario::start(SandboxConfig::default()).await;
    let empty = json!({"vendor": "hubspot", "size": {"companies": 0, "contacts": 0, "deals": 0, "leads": 0, "tickets": 0, "referrals": 0}});
    let resp = reqwest::Client::new()
        .post(format!("{}/admin/reset", s.sandbox.admin_url()))
        .json(&empty)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
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

/// Requests to a vendor's data API (token endpoints left out) since `from` in the log.
fn api_calls(s: &Scenario, vendor: Vendor, from: usize) -> Vec<String> {
    let data = match vendor {
        Vendor::Salesforce => "/services/data/",
        _ => "/crm/",
    };
    s.sandbox
        .requests(Some(vendor))
        .into_iter()
        .skip(from)
        .filter(|r| r.uri.starts_with(data))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn calls(n: usize, per: usize) -> usize {
    n.div_ceil(per)
}

#[tokio::test]
async fn imports_accounts_contacts_and_leads_into_hubspot_with_associations_as_estimated() {
    let s = start().await;
    let vars = [("import", "all")];

    // The estimate: what the import will write, and the daily allocation left.
    let estimate = s
        .run(
            &example("salesforce-hubspot/estimate.toml"),
            Some("sandbox"),
            &vars,
        )
        .await;
    assert!(estimate.completed(), "{estimate:?}");
    let rows = s.dataset("import_estimate").await;
    let mut planned: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for row in rows {
        assert_eq!(row["mode"], "all");
        planned
            .entry(row["object"].as_str().unwrap().to_owned())
            .or_default()
            .push(row);
    }
    let size = weft_sandbox::DemoSize::default();
    let (companies, contacts, leads) = (
        planned["company"].len(),
        planned["contact"].len(),
        planned["lead"].len(),
    );
    assert_eq!(
        (companies as u64, contacts as u64, leads as u64),
        (size.companies, size.contacts, size.leads)
    );
    let limits: BTreeMap<String, Value> = s
        .dataset("import_limits")
        .await
        .into_iter()
        .map(|r| (r["vendor"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(limits["salesforce"]["max"], 100_000);
    let sf_left = limits["salesforce"]["remaining"].as_u64().unwrap();
    assert!(sf_left > 99_900 && sf_left < 100_000, "{limits:?}");
    let hs_left = limits["hubspot"]["remaining"].as_u64().unwrap();
    assert!(
        hs_left > 0 && hs_left <= limits["hubspot"]["max"].as_u64().unwrap(),
        "{limits:?}"
    );

    // The import and the associations, counting what each costs upstream.
    let (sf_before, hs_before) = (
        s.sandbox.requests(Some(Vendor::Salesforce)).len(),
        s.sandbox.requests(Some(Vendor::HubSpot)).len(),
    );
    let import = s
        .run(
            &example("salesforce-hubspot/import.toml"),
            Some("sandbox"),
            &vars,
        )
        .await;
    assert!(import.completed(), "{import:?}");
    for (id, n) in [
        ("save-companies", companies),
        ("save-contacts", contacts),
        ("save-leads", leads),
    ] {
        let st = step(&import, id);
        assert_eq!((st.records_out, st.failed), (n as u64, 0), "{st:?}");
    }
    let associate = s
        .run(
            &example("salesforce-hubspot/associate.toml"),
            Some("sandbox"),
            &vars,
        )
        .await;
    assert!(associate.completed(), "{associate:?}");
    let st = step(&associate, "associate");
    assert_eq!((st.records_out, st.failed), (contacts as u64, 0), "{st:?}");
    let (sf_calls, hs_calls) = (
        api_calls(&s, Vendor::Salesforce, sf_before),
        api_calls(&s, Vendor::HubSpot, hs_before),
    );

    // The API calls README.md's estimate gives for these counts, against what was spent.
    // Salesforce: a full read is a COUNT() and one query per 2,000 records; the import reads
    // Account, Contact (twice), Lead, Campaign and CampaignMember, the association job Account,
    // Contact, Campaign and CampaignMember.
    let read = |n: usize| 1 + calls(n, 2_000).max(1);
    let (campaigns, members) = (
        s.soql("SELECT Id FROM Campaign").await.len(),
        s.soql("SELECT Id FROM CampaignMember").await.len(),
    );
    let sf_estimate = read(companies)
        + 2 * read(contacts)
        + read(leads)
        + read(companies)
        + read(contacts)
        + 2 * (read(campaigns) + read(members));
    // HubSpot: one batch upsert per 100 records, then one list page per 100 companies and
    // contacts and one association batch per 100 contacts.
    let hs_estimate = calls(companies, 100)
        + calls(contacts, 100)
        + calls(leads, 100)
        + calls(companies, 100)
        + calls(contacts + leads, 100)
        + calls(contacts, 100);
    assert_eq!(sf_calls.len(), sf_estimate, "{sf_calls:#?}");
    assert_eq!(hs_calls.len(), hs_estimate, "{hs_calls:#?}");
    // The estimate flow's own count of HubSpot calls, beside the allocation left, is what the
    // import and the association job made.
    let by_object: BTreeMap<String, Value> = s
        .dataset("import_calls")
        .await
        .into_iter()
        .filter(|r| r["mode"] == "all")
        .map(|r| (r["object"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(
        (
            by_object["company"]["objects"].as_u64(),
            by_object["contact"]["objects"].as_u64(),
            by_object["lead"]["objects"].as_u64()
        ),
        (
            Some(companies as u64),
            Some(contacts as u64),
            Some(leads as u64)
        )
    );
    let counted: u64 = by_object
        .values()
        .flat_map(|r| {
            [
                "hubspot_upserts",
                "hubspot_list_pages",
                "hubspot_associations",
            ]
            .map(|f| r[f].as_u64().unwrap_or(0))
        })
        .sum();
    assert_eq!(counted, hs_calls.len() as u64, "{by_object:#?}");
    assert!(
        by_object
            .values()
            .all(|r| r["remaining"].as_u64() == Some(hs_left)),
        "{by_object:#?}"
    );
    assert!(sf_estimate as u64 <= sf_left && hs_estimate as u64 <= hs_left);

    // HubSpot's final state: the companies, with their mapped fields ...
    let hs_companies = hubspot_objects(
        &s,
        "companies",
        "name,domain,industry,phone,city,state,country,numberofemployees,annualrevenue",
        None,
    )
    .await;
    assert_eq!(hs_companies.len(), companies);
    let mut company_of_account: BTreeMap<String, String> = BTreeMap::new();
    for row in &planned["company"] {
        let account = salesforce_record(&s, "Account", row["id"].as_str().unwrap()).await;
        let domain = bare_domain(account["Website"].as_str().unwrap());
        let found: Vec<&Value> = hs_companies
            .iter()
            .filter(|c| c["properties"]["domain"] == domain.as_str())
            .collect();
        assert_eq!(found.len(), 1, "one company for {domain}");
        let p = &found[0]["properties"];
        assert_eq!(p["name"], account["Name"]);
        assert_eq!(p["industry"], account["Industry"]);
        assert_eq!(p["phone"], account["Phone"]);
        assert_eq!(
            (&p["city"], &p["state"], &p["country"]),
            (
                &account["BillingCity"],
                &account["BillingState"],
                &account["BillingCountry"]
            )
        );
        assert_eq!(
            p["numberofemployees"],
            account["NumberOfEmployees"].to_string()
        );
        assert_eq!(
            p["annualrevenue"].as_str().unwrap().parse::<f64>().unwrap(),
            account["AnnualRevenue"].as_f64().unwrap()
        );
        company_of_account.insert(
            row["id"].as_str().unwrap().to_owned(),
            found[0]["id"].as_str().unwrap().to_owned(),
        );
    }

    // ... the contacts, each associated with the company its account became ...
    let hs_contacts = hubspot_objects(
        &s,
        "contacts",
        "email,firstname,lastname,jobtitle,company,lifecyclestage",
        Some("companies"),
    )
    .await;
    assert_eq!(hs_contacts.len(), contacts + leads);
    let by_email: BTreeMap<String, &Value> = hs_contacts
        .iter()
        .map(|c| (c["properties"]["email"].as_str().unwrap().to_lowercase(), c))
        .collect();
    let associated = |c: &Value| -> Vec<String> {
        c["associations"]["companies"]["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for row in &planned["contact"] {
        let sf = salesforce_record(&s, "Contact", row["id"].as_str().unwrap()).await;
        let hs = by_email[&sf["Email"].as_str().unwrap().to_lowercase()];
        assert_eq!(
            (
                &hs["properties"]["firstname"],
                &hs["properties"]["lastname"]
            ),
            (&sf["FirstName"], &sf["LastName"])
        );
        assert_eq!(hs["properties"]["jobtitle"], sf["Title"]);
        assert_eq!(hs["properties"]["lifecyclestage"], "customer");
        let account = sf["AccountId"]
            .as_str()
            .expect("demo contacts have an account");
        let mut ids = associated(hs);
        ids.dedup();
        assert_eq!(
            ids,
            [company_of_account[account].clone()],
            "{} is associated with its account's company",
            sf["Email"]
        );
    }
    // ... and the leads, as lead-stage contacts without a company.
    for row in &planned["lead"] {
        let sf = salesforce_record(&s, "Lead", row["id"].as_str().unwrap()).await;
        let hs = by_email[&sf["Email"].as_str().unwrap().to_lowercase()];
        assert_eq!(hs["properties"]["lifecyclestage"], "lead");
        assert_eq!(hs["properties"]["company"], sf["Company"]);
        assert!(associated(hs).is_empty());
    }

    let moved = (companies + contacts + leads) as f64;
    let took = import.took + associate.took;
    eprintln!(
        "scenario 4: {} objects and {contacts} associations in {took:?} ({:.0} records/s); {} Salesforce and {} HubSpot API calls",
        moved as u64,
        (moved + contacts as f64) / took.as_secs_f64(),
        sf_calls.len(),
        hs_calls.len()
    );
}

#[tokio::test]
async fn campaign_members_mode_imports_the_campaigns_people_and_their_accounts_only() {
    let s = start().await;
    let vars = [
        ("import", "campaign_members"),
        ("campaign", "Trade Show Berlin"),
    ];
    let campaign = s
        .soql("SELECT Id FROM Campaign WHERE Name = 'Trade Show Berlin'")
        .await;
    let campaign = campaign[0]["Id"].as_str().unwrap().to_owned();
    let members = s
        .soql(&format!(
            "SELECT ContactId, LeadId FROM CampaignMember WHERE CampaignId = '{campaign}'"
        ))
        .await;
    let member_contacts: Vec<String> = members
        .iter()
        .filter_map(|m| m["ContactId"].as_str().map(str::to_owned))
        .collect();
    let member_leads: Vec<String> = members
        .iter()
        .filter_map(|m| m["LeadId"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !member_contacts.is_empty() && !member_leads.is_empty(),
        "{members:?}"
    );
    let all_members = s.soql("SELECT Id FROM CampaignMember").await;
    assert!(
        all_members.len() > members.len(),
        "other campaigns have members too"
    );

    let mut emails = std::collections::BTreeSet::new();
    let mut accounts = std::collections::BTreeSet::new();
    for id in &member_contacts {
        let c = salesforce_record(&s, "Contact", id).await;
        emails.insert(c["Email"].as_str().unwrap().to_lowercase());
        accounts.insert(c["AccountId"].as_str().unwrap().to_owned());
    }
    for id in &member_leads {
        emails.insert(
            salesforce_record(&s, "Lead", id).await["Email"]
                .as_str()
                .unwrap()
                .to_lowercase(),
        );
    }

    let estimate = s
        .run(
            &example("salesforce-hubspot/estimate.toml"),
            Some("sandbox"),
            &vars,
        )
        .await;
    assert!(estimate.completed(), "{estimate:?}");
    let mut planned: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in s
        .dataset("import_estimate")
        .await
        .into_iter()
        .filter(|r| r["mode"] == "campaign_members")
    {
        planned
            .entry(row["object"].as_str().unwrap().to_owned())
            .or_default()
            .insert(row["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        planned["contact"],
        member_contacts.iter().cloned().collect()
    );
    assert_eq!(planned["lead"], member_leads.iter().cloned().collect());
    assert_eq!(
        planned["company"], accounts,
        "the accounts of the member contacts"
    );

    for flow in ["import", "associate"] {
        let report = s
            .run(
                &example(&format!("salesforce-hubspot/{flow}.toml")),
                Some("sandbox"),
                &vars,
            )
            .await;
        assert!(report.completed(), "{flow}: {report:?}");
    }
    let hs_contacts =
        hubspot_objects(&s, "contacts", "email,lifecyclestage", Some("companies")).await;
    let imported: std::collections::BTreeSet<String> = hs_contacts
        .iter()
        .map(|c| c["properties"]["email"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(
        imported, emails,
        "exactly the campaign's contacts and leads"
    );
    assert_eq!(
        hubspot_objects(&s, "companies", "domain", None).await.len(),
        accounts.len()
    );
    let associated = hs_contacts
        .iter()
        .filter(|c| {
            c["properties"]["lifecyclestage"] == "customer"
                && c["associations"]["companies"]["results"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
        })
        .count();
    assert_eq!(
        associated,
        member_contacts.len(),
        "every member contact is associated with its company"
    );
}
