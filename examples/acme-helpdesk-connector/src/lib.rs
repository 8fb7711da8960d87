//! A connector for the (made-up) Acme Helpdesk API, written against `weft-sdk` alone.

use serde::{Deserialize, Serialize};
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, HeaderTemplate, Page, ReadRequest,
    Record, Result, Stream, SyncMode, WriteMode, WriteOutcome, WriteRequest, json,
};

/// The API's largest page.
const MAX_PAGE: u32 = 200;

#[derive(Deserialize)]
struct Config {
    /// The account's subdomain: `acme` for `https://acme.acmehelpdesk.example`.
    account: String,
}

fn base(conn: &Connection) -> Result<String> {
    let config: Config = conn.config_as()?;
    Ok(format!("https://{}.acmehelpdesk.example/api", config.account))
}

/// Where a read resumes: the offset within this pass, and for incremental reads the lower
/// bound of this pass and the newest change seen.
#[derive(Serialize, Deserialize, Default)]
struct Resume {
    offset: u64,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    newest: Option<String>,
}

#[derive(Deserialize)]
struct TicketPage {
    tickets: Vec<Record>,
    has_more: bool,
}

#[derive(Deserialize)]
struct BulkResult {
    results: Vec<BulkItem>,
}

#[derive(Deserialize)]
struct BulkItem {
    id: Option<String>,
    created: Option<bool>,
    error: Option<String>,
}

pub struct AcmeHelpdesk;

impl Connector for AcmeHelpdesk {
    fn describe() -> ConnectorInfo {
        ConnectorInfo::new("acme-helpdesk", env!("CARGO_PKG_VERSION"))
            .description("Acme Helpdesk tickets: offset-paged reads, incremental on updated_at, bulk upserts.")
            .config_schema(json!({
                "type": "object",
                "required": ["account"],
                "properties": {"account": {"type": "string", "description": "The account subdomain."}}
            }))
            .stream(
                Stream::new(
                    "tickets",
                    json!({
                        "type": "object",
                        "required": ["id", "subject"],
                        "properties": {
                            "id": {"type": "string"},
                            "external_ref": {"type": "string"},
                            "subject": {"type": "string"},
                            "status": {"enum": ["new", "open", "closed"]},
                            "requester_email": {"type": "string", "format": "email"},
                            "updated_at": {"type": "string", "format": "date-time"}
                        }
                    }),
                )
                .description("Support tickets.")
                .incremental("updated_at")
                .writable(&[WriteMode::Upsert]),
            )
            .auth(
                AuthKind::ApiKey,
                CredentialPlacement::Header(HeaderTemplate { name: "X-Acme-Key".into(), value: "{token}".into() }),
            )
            .host("https://{account}.acmehelpdesk.example")
            // Acme documents 100 requests per minute per API key.
            .rate_limit(100, std::time::Duration::from_secs(60))
    }

    fn check(conn: &Connection) -> Result<()> {
        conn.get(&format!("{}/me", base(conn)?)).send()?.error_for_status()?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        if req.stream != "tickets" {
            return Err(Error::config(format!("acme-helpdesk has no stream `{}`", req.stream)));
        }
        let resume: Resume = req.cursor_state()?.unwrap_or_default();
        // A finished incremental pass left only `newest`: the next pass starts there.
        let since = match (req.mode, resume.offset) {
            (SyncMode::Incremental, 0) => resume.newest.clone().or(resume.since.clone()),
            (SyncMode::Incremental, _) => resume.since.clone(),
            (SyncMode::Full, _) => None,
        };
        let limit = req.page_size.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        let page: TicketPage = conn
            .get(&format!("{}/tickets", base(conn)?))
            .query("offset", resume.offset)
            .query("limit", limit)
            .query_opt("updated_after", since.as_deref())
            .send_json()?;
        let newest = page
            .tickets
            .iter()
            .filter_map(|t| t.get("updated_at").and_then(|v| v.as_str()))
            .chain(resume.newest.as_deref())
            .max()
            .map(str::to_owned);
        let offset = resume.offset + page.tickets.len() as u64;
        Ok(if page.has_more {
            Page::more(page.tickets, &Resume { offset, since, newest })
        } else {
            Page::last(page.tickets, Some(&Resume { offset: 0, since: None, newest }))
        })
    }

    fn write(conn: &Connection, req: WriteRequest) -> Result<Vec<WriteOutcome>> {
        if req.mode != WriteMode::Upsert || req.key != ["external_ref"] {
            return Err(Error::config("acme-helpdesk writes tickets by upsert on key [\"external_ref\"]"));
        }
        let count = req.records.len();
        let answer: BulkResult =
            conn.post(&format!("{}/tickets/bulk", base(conn)?)).json(&json!({"tickets": req.records}))?.send_json()?;
        if answer.results.len() != count {
            return Err(Error::internal(format!("{} results for {count} tickets", answer.results.len())));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|item| match (item.id, item.created, item.error) {
                (Some(id), Some(true), None) => WriteOutcome::created(id),
                (Some(id), _, None) => WriteOutcome::updated(id),
                (_, _, error) => WriteOutcome::failed(Error::invalid_record(error.unwrap_or_else(|| "rejected".into()))),
            })
            .collect())
    }
}

weft_sdk::export_connector!(AcmeHelpdesk);
