//! `{{name}}`: a weft connector.
//!
//! As generated it reads the users of a helpdesk API shaped like Zendesk's, which the sandbox's
//! Zendesk emulator answers, so `weft plugin test` passes before you change anything:
//!
//! - a full read pages through `GET {base_url}/api/v2/users?page[size]=N&page[after]=C`
//!   (`{"users": [...], "meta": {"has_more": true, "after_cursor": "..."}}`);
//! - an incremental read follows the export `GET {base_url}/api/v2/incremental/users/cursor`
//!   (`start_time` first, then `cursor`) until `end_of_stream`, and resumes there next run;
//! - the host sends the credential (HTTP basic) itself: this code never sees it.
//!
//! To connect another API, change `describe` (name, config, streams, auth, hosts) and the two
//! reads below; keep returning errors as `weft_sdk::Error` values.

use serde::{Deserialize, Serialize};
use weft_sdk::{
    AuthKind, Connection, Connector, ConnectorInfo, CredentialPlacement, Error, Page, ReadRequest,
    Record, Result, Stream, SyncMode, json,
};

/// The API's largest page.
const MAX_PAGE: u32 = 100;

/// The connection's config, as its `config_schema` describes it.
#[derive(Deserialize)]
struct Config {
    /// `https://acme.zendesk.com`, or the sandbox's address.
    base_url: String,
}

fn base(conn: &Connection) -> Result<String> {
    let config: Config = conn.config_as()?;
    Ok(config.base_url.trim_end_matches('/').to_owned())
}

/// Where a read resumes. The host stores it between pages and runs, and hands it back.
#[derive(Serialize, Deserialize)]
enum Resume {
    /// A full read: the page cursor the API gave for the next page.
    After(String),
    /// An incremental read: the export's cursor.
    Export(String),
}

#[derive(Deserialize)]
struct UsersPage {
    users: Vec<Record>,
    meta: Meta,
}

#[derive(Deserialize)]
struct Meta {
    has_more: bool,
    after_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ExportPage {
    users: Vec<Record>,
    after_cursor: Option<String>,
    end_of_stream: bool,
}

pub struct Plugin;

impl Connector for Plugin {
    fn describe() -> ConnectorInfo {
        ConnectorInfo::new("{{name}}", env!("CARGO_PKG_VERSION"))
            .description("Helpdesk users: cursor-paged full reads and an incremental export.")
            .config_schema(json!({
                "type": "object",
                "required": ["base_url"],
                "properties": {
                    "base_url": {"type": "string", "description": "The API's address, e.g. https://acme.zendesk.com"}
                }
            }))
            .stream(
                Stream::new(
                    "users",
                    json!({
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "integer"},
                            "name": {"type": "string"},
                            "email": {"type": ["string", "null"]},
                            "updated_at": {"type": "string", "format": "date-time"}
                        }
                    }),
                )
                .description("People who write tickets and agents who answer them.")
                .incremental("updated_at"),
            )
            // The operator configures the credential; the host puts it in `Authorization`.
            .auth(AuthKind::Basic, CredentialPlacement::Basic)
            // The only host this connector may call: derived from the connection's config.
            .host("{base_url}")
    }

    fn check(conn: &Connection) -> Result<()> {
        conn.get(&format!("{}/api/v2/users", base(conn)?))
            .query("page[size]", 1)
            .send()?
            .error_for_status()?;
        Ok(())
    }

    fn read(conn: &Connection, req: ReadRequest) -> Result<Page> {
        if req.stream != "users" {
            return Err(Error::config(format!("{{name}} has no stream `{}`", req.stream)));
        }
        let size = req.page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        match (req.mode, req.cursor_state::<Resume>()?) {
            (SyncMode::Full, None) => full_page(conn, size, None),
            (SyncMode::Full, Some(Resume::After(after))) => full_page(conn, size, Some(&after)),
            (SyncMode::Incremental, None) => export_page(conn, size, None),
            (SyncMode::Incremental, Some(Resume::Export(cursor))) => {
                export_page(conn, size, Some(&cursor))
            }
            (mode, Some(_)) => Err(Error::config(format!(
                "the stored cursor belongs to another kind of read than this {mode:?} one; reset the flow's cursor"
            ))),
        }
    }
}

fn full_page(conn: &Connection, size: u32, after: Option<&str>) -> Result<Page> {
    let page: UsersPage = conn
        .get(&format!("{}/api/v2/users", base(conn)?))
        .query("page[size]", size)
        .query_opt("page[after]", after)
        .send_json()?;
    Ok(match (page.meta.has_more, page.meta.after_cursor) {
        (true, Some(next)) => Page::more(page.users, &Resume::After(next)),
        _ => Page::last(page.users, None::<&Resume>),
    })
}

fn export_page(conn: &Connection, size: u32, cursor: Option<&str>) -> Result<Page> {
    let request = conn
        .get(&format!("{}/api/v2/incremental/users/cursor", base(conn)?))
        .query("per_page", size);
    let request = match cursor {
        Some(cursor) => request.query("cursor", cursor),
        // The first read starts at the beginning of time.
        None => request.query("start_time", 0),
    };
    let page: ExportPage = request.send_json()?;
    let resume = page.after_cursor.map(Resume::Export);
    Ok(if page.end_of_stream {
        Page::last(page.users, resume.as_ref())
    } else {
        match resume {
            Some(resume) => Page::more(page.users, &resume),
            None => return Err(Error::internal("the export page gave no cursor to go on from")),
        }
    })
}

weft_sdk::export_connector!(Plugin);
