//! Pages through a 1,000,000-record object at each emulator's maximum page size and prints
//! requests/s, records/s and the process's resident memory. Run with
//! `cargo bench -p weft-sandbox --bench paging` (set `PAGING_RECORDS` for another size).

use std::collections::HashSet;
use std::time::Instant;

use base64::Engine;
use serde_json::Value;
use weft_sandbox::{DemoData, DemoSize, Sandbox, SandboxConfig, Vendor};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

struct Figure {
    name: &'static str,
    requests: u64,
    records: u64,
    secs: f64,
}

impl Figure {
    fn print(&self) {
        println!(
            "{:<44} {:>8} requests {:>9} records {:>7.1} s {:>8.0} requests/s {:>9.0} records/s  rss {:.0} MiB",
            self.name,
            self.requests,
            self.records,
            self.secs,
            self.requests as f64 / self.secs,
            self.records as f64 / self.secs,
            rss_mib()
        );
    }
}

async fn zoho(sb: &Sandbox, http: &reqwest::Client, expected: u64) -> Figure {
    let z = sb.vendor(Vendor::Zoho).unwrap();
    let c = z.credentials();
    let t: Value = http
        .post(format!("{}/oauth/v2/token", z.base_url()))
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("refresh_token", c.refresh_token.as_deref().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = format!("Zoho-oauthtoken {}", t["access_token"].as_str().unwrap());
    let started = Instant::now();
    let (mut requests, mut records) = (0u64, 0u64);
    let mut token: Option<String> = None;
    let mut seen_last = HashSet::new();
    loop {
        let url = match &token {
            None => format!(
                "{}/crm/v7/Contacts?fields=Last_Name,Email&per_page=200",
                z.base_url()
            ),
            Some(t) => format!(
                "{}/crm/v7/Contacts?fields=Last_Name,Email&per_page=200&page_token={t}",
                z.base_url()
            ),
        };
        let r: Value = http
            .get(url)
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        requests += 1;
        let page = r["data"].as_array().unwrap();
        records += page.len() as u64;
        if let Some(last) = page.last() {
            seen_last.insert(last["id"].as_str().unwrap().to_string());
        }
        match r["info"]["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(records, expected, "Zoho paging lost or repeated records");
    assert_eq!(seen_last.len() as u64, requests);
    Figure {
        name: "Zoho Contacts (per_page=200, page_token)",
        requests,
        records,
        secs: started.elapsed().as_secs_f64(),
    }
}

async fn zendesk(sb: &Sandbox, http: &reqwest::Client, expected: u64) -> Figure {
    let z = sb.vendor(Vendor::Zendesk).unwrap();
    let c = z.credentials();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}/token:{}",
            c.username,
            c.api_token.unwrap()
        ))
    );
    let started = Instant::now();
    let (mut requests, mut records) = (0u64, 0u64);
    let mut url = format!("{}/api/v2/tickets.json?page[size]=100", z.base_url());
    loop {
        let r: Value = http
            .get(&url)
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        requests += 1;
        records += r["tickets"].as_array().unwrap().len() as u64;
        if r["meta"]["has_more"] != true {
            break;
        }
        url = r["links"]["next"].as_str().unwrap().to_string();
    }
    assert_eq!(records, expected, "Zendesk paging lost or repeated records");
    Figure {
        name: "Zendesk tickets (page[size]=100, cursor)",
        requests,
        records,
        secs: started.elapsed().as_secs_f64(),
    }
}

async fn salesforce(sb: &Sandbox, http: &reqwest::Client, expected: u64) -> Figure {
    let s = sb.vendor(Vendor::Salesforce).unwrap();
    let creds = s.credentials();
    // JWT bearer with the published demo key.
    let pem = &creds.extra["jwt_private_key_pem"];
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let exp = sb
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 120;
    let input = format!(
        "{}.{}",
        b64.encode(br#"{"alg":"RS256"}"#),
        b64.encode(serde_json::json!({"iss": creds.client_id, "sub": creds.username, "aud": "https://login.salesforce.com", "exp": exp}).to_string())
    );
    let mut sig = vec![0; key.public().modulus_len()];
    key.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let assertion = format!("{input}.{}", b64.encode(sig));
    let t: Value = http
        .post(format!("{}/services/oauth2/token", s.base_url()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = t["access_token"].as_str().unwrap().to_string();
    let started = Instant::now();
    let (mut requests, mut records) = (0u64, 0u64);
    let mut r: Value = http
        .get(format!("{}/services/data/v66.0/query", s.base_url()))
        .query(&[("q", "SELECT Id, Name FROM Account")])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    loop {
        requests += 1;
        records += r["records"].as_array().unwrap().len() as u64;
        if r["done"] == true {
            break;
        }
        let next = format!("{}{}", s.base_url(), r["nextRecordsUrl"].as_str().unwrap());
        r = http
            .get(next)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    assert_eq!(records, expected, "SOQL paging lost or repeated records");
    Figure {
        name: "Salesforce SOQL Account (batch 2000, locator)",
        requests,
        records,
        secs: started.elapsed().as_secs_f64(),
    }
}

fn main() {
    let n: u64 = std::env::var("PAGING_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = SandboxConfig {
            data: DemoData {
                seed: 42,
                size: DemoSize::uniform(n),
            },
            ..SandboxConfig::default()
        };
        // The real services cap these far below a million; lift the caps to measure the paging path.
        config.zoho.page_token_records = n + 1;
        config.zoho.daily_credits = u64::MAX / 2;
        config.zendesk.requests_per_minute = u32::MAX;
        config.salesforce.daily_api_requests = u64::MAX / 2;
        let before = rss_mib();
        let sb = Sandbox::start(config).await.unwrap();
        println!(
            "{n} records per object; rss after start {:.0} MiB (before {before:.0} MiB)",
            rss_mib()
        );
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        zoho(&sb, &http, n).await.print();
        salesforce(&sb, &http, n).await.print();
        zendesk(&sb, &http, n).await.print();
        sb.shutdown().await;
    });
}
