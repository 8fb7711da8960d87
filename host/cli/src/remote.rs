//! Remote mode: with `--server URL` (or `WEFT_SERVER`) and a tenant's token in `WEFT_TOKEN`,
//! `weft flows`, `weft runs` and `weft secret` talk to a weft server's API instead of the local
//! store, and print what they print locally.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::Command;
use crate::runs::{Format, RunsCommand};
use crate::secret::SecretCommand;

#[derive(Subcommand)]
pub enum FlowsCommand {
    /// Deploy flow files (or every `*.toml` of a directory): each is checked and planned by the
    /// server, and replaces the flow of the same name.
    Deploy {
        /// Flow files or directories of them.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// A variable's value, for the flows that declare it (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::parse_var)]
        vars: Vec<(String, String)>,
    },
    /// The tenant's flows: enabled or not, trigger, next due time, last run.
    List,
    /// One flow, with its source.
    Show { name: String },
    /// Serve a disabled flow again.
    Enable { name: String },
    /// Stop serving a flow; its history and cursors stay.
    Disable { name: String },
    /// Delete a flow and its cursors; its runs stay in the history.
    Delete { name: String },
    /// Ask the server to run a flow now.
    Run {
        name: String,
        /// A variable's value for this run, over the one it was deployed with (repeatable).
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::parse_var)]
        vars: Vec<(String, String)>,
    },
}

/// What a request to the server carries.
enum Body {
    Empty,
    Json(Value),
    /// A plugin's component, as its bytes.
    Component(Vec<u8>),
}

/// A weft server's API, as one tenant.
pub struct Remote {
    base: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    pub fn new(server: &str) -> anyhow::Result<Self> {
        let token = std::env::var("WEFT_TOKEN").ok().filter(|t| !t.is_empty());
        let Some(token) = token else {
            bail!(
                "--server needs the tenant's API token in WEFT_TOKEN (the operator prints one with `weft tenant create` or `weft tenant token`)"
            );
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("making the HTTP client")?;
        let base = reqwest::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
            .with_context(|| {
                format!("--server `{server}` is not a server's URL, e.g. https://weft.example.com")
            })?;
        Ok(Remote { base, token, http })
    }

    /// `method /api/v1/SEGMENTS?QUERY` with `body`: the answer's text, or the server's error,
    /// said. Segments and query values are escaped by the URL, whatever they hold.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Body,
    ) -> anyhow::Result<String> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("the base was checked to be one")
            .pop_if_empty()
            .extend(["api", "v1"])
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(&self.token);
        request = match body {
            Body::Empty => request,
            Body::Json(body) => request.json(&body),
            Body::Component(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/wasm")
                .body(bytes),
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching the weft server at {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer to {method} {url}"))?;
        if status.is_success() {
            return Ok(text);
        }
        let error: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(report) = error["report"].as_str() {
            eprint!("{report}");
        }
        match error["message"].as_str() {
            Some(message) => bail!("the server refused {method} {path} ({status}): {message}"),
            None => bail!("the server answered {method} {path} with {status}: {text}"),
        }
    }

    /// The URL of a deployed flow's webhook endpoint on this server, for a webhook-triggered
    /// flow (as the API describes it).
    fn webhook_url(&self, flow: &Value) -> Option<reqwest::Url> {
        self.base.join(flow["webhook_path"].as_str()?).ok()
    }

    async fn json(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let body = body.map_or(Body::Empty, Body::Json);
        parsed(self.call(method, segments, query, body).await?)
    }

    /// Uploads a plugin's component as the tenant's; what the server made of it.
    async fn upload(&self, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let text = self
            .call(Method::POST, &["plugins"], &[], Body::Component(bytes))
            .await?;
        parsed(text)
    }
}

/// An answer's JSON; `null` for an empty one.
fn parsed(text: String) -> anyhow::Result<Value> {
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).context("the server's answer is not JSON")
}

/// Runs `command` against the server, if it has a remote mode.
pub async fn run(server: &str, command: Command) -> anyhow::Result<()> {
    let remote = Remote::new(server)?;
    match command {
        Command::Flows { command } => flows(&remote, command).await,
        Command::Runs { command } => runs(&remote, command).await,
        Command::Secret { command } => secret(&remote, command).await,
        Command::Plugin { command } => plugin(&remote, command).await,
        _ => bail!(
            "this command works on the local data directory only; `--server` is for `weft flows`, `weft runs`, `weft secret` and `weft plugin`"
        ),
    }
}

fn text_of(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

async fn flows(remote: &Remote, command: FlowsCommand) -> anyhow::Result<()> {
    match command {
        FlowsCommand::Deploy { paths, vars } => {
            let mut refused = 0;
            for file in flow_files(&paths)? {
                let source = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let declared: serde_json::Map<String, Value> = vars
                    .iter()
                    .filter(|(name, _)| declares(&source, name))
                    .map(|(name, value)| (name.clone(), json!(value)))
                    .collect();
                let body = json!({ "source": source, "variables": declared });
                match remote.json(Method::POST, &["flows"], &[], Some(body)).await {
                    Ok(flow) => {
                        eprintln!(
                            "deployed {} as flow `{}` ({})",
                            file.display(),
                            text_of(&flow["name"]),
                            text_of(&flow["trigger"])
                        );
                        if let Some(url) = remote.webhook_url(&flow) {
                            eprintln!("  its webhook endpoint, for the vendor: {url}");
                        }
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", file.display());
                        refused += 1;
                    }
                }
            }
            if refused > 0 {
                bail!("{refused} flow file(s) refused; the others are deployed");
            }
        }
        FlowsCommand::List => {
            let flows = remote.json(Method::GET, &["flows"], &[], None).await?;
            for f in flows.as_array().into_iter().flatten() {
                let state = if f["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                };
                out!(
                    "{}\t{state}\t{}\tnext {}\tlast {} {}",
                    text_of(&f["name"]),
                    text_of(&f["trigger"]),
                    text_of(&f["next_due"]),
                    text_of(&f["last_run"]["id"]),
                    text_of(&f["last_run"]["status"]),
                )?;
            }
        }
        FlowsCommand::Show { name } => {
            let f = remote
                .json(Method::GET, &["flows", &name], &[], None)
                .await?;
            out!(
                "flow `{}`: {}, {}, deployed {}",
                text_of(&f["name"]),
                if f["enabled"] == true {
                    "enabled"
                } else {
                    "disabled"
                },
                text_of(&f["trigger"]),
                text_of(&f["deployed_at"])
            )?;
            if let Some(url) = remote.webhook_url(&f) {
                out!("webhook endpoint {url}")?;
            }
            out!("\n{}", text_of(&f["source"]))?;
        }
        FlowsCommand::Enable { name } => {
            remote
                .json(Method::POST, &["flows", &name, "enable"], &[], None)
                .await?;
            eprintln!("flow `{name}` enabled");
        }
        FlowsCommand::Disable { name } => {
            remote
                .json(Method::POST, &["flows", &name, "disable"], &[], None)
                .await?;
            eprintln!("flow `{name}` disabled");
        }
        FlowsCommand::Delete { name } => {
            remote
                .call(Method::DELETE, &["flows", &name], &[], Body::Empty)
                .await?;
            eprintln!("flow `{name}` deleted (its runs stay in the history)");
        }
        FlowsCommand::Run { name, vars } => {
            let variables: serde_json::Map<String, Value> =
                vars.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let body = (!variables.is_empty()).then(|| json!({ "variables": variables }));
            remote
                .json(Method::POST, &["flows", &name, "runs"], &[], body)
                .await?;
            eprintln!("asked for a run of flow `{name}`; `weft runs list --flow {name}` shows it");
        }
    }
    Ok(())
}

/// Whether the flow text declares variable `name` (a key of its `[variables]` table).
fn declares(source: &str, name: &str) -> bool {
    toml::from_str::<toml::Table>(source)
        .ok()
        .and_then(|t| {
            t.get("variables")
                .and_then(|v| v.as_table())
                .map(|v| v.contains_key(name))
        })
        .unwrap_or(false)
}

/// The files `paths` name: files as they are, directories as their `*.toml`, in name order.
fn flow_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                bail!("no flow files (*.toml) in {}", path.display());
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

async fn runs(remote: &Remote, command: RunsCommand) -> anyhow::Result<()> {
    match command {
        RunsCommand::List {
            limit,
            flow,
            status,
        } => {
            let limit = limit.to_string();
            let mut query = vec![("limit", limit.as_str())];
            if let Some(flow) = &flow {
                query.push(("flow", flow));
            }
            if let Some(status) = &status {
                query.push(("status", status));
            }
            let runs = remote.json(Method::GET, &["runs"], &query, None).await?;
            for r in runs.as_array().into_iter().flatten() {
                out!(
                    "{}\t{}\t{}\t{}",
                    text_of(&r["id"]),
                    text_of(&r["flow"]),
                    text_of(&r["status"]),
                    text_of(&r["started_at"])
                )?;
            }
        }
        RunsCommand::Show { run } => {
            let r = remote.json(Method::GET, &["runs", &run], &[], None).await?;
            out!(
                "run {} of flow `{}`: {}",
                text_of(&r["id"]),
                text_of(&r["flow"]),
                text_of(&r["status"])
            )?;
            out!("started {}", text_of(&r["started_at"]))?;
            if let Some(finished) = r["finished_at"].as_str() {
                out!("finished {finished}")?;
            }
            if let Some(error) = r["error"].as_str() {
                out!("error {error}")?;
            }
            out!(
                "\n{:<20} {:<9} {:>6} {:>9} {:>9} {:>7}",
                "step",
                "status",
                "pages",
                "in",
                "out",
                "failed"
            )?;
            for s in r["steps"].as_array().into_iter().flatten() {
                out!(
                    "{:<20} {:<9} {:>6} {:>9} {:>9} {:>7}",
                    text_of(&s["step"]),
                    text_of(&s["status"]),
                    s["pages"],
                    s["records_in"],
                    s["records_out"],
                    s["failed"]
                )?;
                if let Some(error) = s["error"].as_str() {
                    out!("  error: {error}")?;
                }
            }
        }
        RunsCommand::Errors { run, format } => {
            let format = match format {
                Format::Jsonl => "jsonl",
                Format::Csv => "csv",
            };
            let text = remote
                .call(
                    Method::GET,
                    &["runs", &run, "errors"],
                    &[("format", format)],
                    Body::Empty,
                )
                .await?;
            use std::io::Write as _;
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
        RunsCommand::Retry { run, flow, .. } => {
            if flow.is_some() {
                bail!(
                    "--flow is for local retries: the server retries with the flow deployed to it (deploy the fixed flow first with `weft flows deploy`)"
                );
            }
            let asked = remote
                .json(Method::POST, &["runs", &run, "retry"], &[], None)
                .await?;
            let flow = text_of(&asked["flow"]);
            out!(
                "retry of the failed records of run {run} asked for; the server runs it as soon as it can (`weft runs list --flow {flow}`)"
            )?;
        }
        RunsCommand::Cancel { run } => {
            remote
                .json(Method::POST, &["runs", &run, "cancel"], &[], None)
                .await?;
            out!("run {run} asked to stop; it stops after its current page")?;
        }
    }
    Ok(())
}

async fn secret(remote: &Remote, command: SecretCommand) -> anyhow::Result<()> {
    match command {
        SecretCommand::Set { name } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the secret from standard input")?;
            let value = crate::secret::trimmed(&value);
            if value.is_empty() {
                bail!(
                    "no value on standard input; pipe it in, e.g. `printf %s \"$TOKEN\" | weft --server URL secret set {name}`"
                );
            }
            remote
                .call(
                    Method::PUT,
                    &["secrets", &name],
                    &[],
                    Body::Json(json!({ "value": value })),
                )
                .await?;
            eprintln!("stored secret `{name}` on the server; refer to it as \"secret:{name}\"");
        }
        SecretCommand::List => {
            let secrets = remote.json(Method::GET, &["secrets"], &[], None).await?;
            for s in secrets.as_array().into_iter().flatten() {
                out!("{}\t{}", text_of(&s["name"]), text_of(&s["updated_at"]))?;
            }
        }
        SecretCommand::Rm { name } => {
            remote
                .call(Method::DELETE, &["secrets", &name], &[], Body::Empty)
                .await?;
            eprintln!("deleted secret `{name}` on the server");
        }
    }
    Ok(())
}

/// The tenant's own plugins on the server: found by its flows before the shared ones.
async fn plugin(remote: &Remote, command: crate::PluginCommand) -> anyhow::Result<()> {
    match command {
        crate::PluginCommand::Install { file, .. } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let plugin = remote.upload(bytes).await?;
            out!(
                "installed {} {} ({}) for the tenant; digest {}",
                text_of(&plugin["name"]),
                text_of(&plugin["version"]),
                text_of(&plugin["kind"]),
                text_of(&plugin["digest"])
            )?;
        }
        crate::PluginCommand::List { .. } => {
            let plugins = remote.json(Method::GET, &["plugins"], &[], None).await?;
            out!("{:<24} {:<12} {:<10} uploaded", "name", "version", "kind")?;
            for p in plugins.as_array().into_iter().flatten() {
                out!(
                    "{:<24} {:<12} {:<10} {}",
                    text_of(&p["name"]),
                    text_of(&p["version"]),
                    text_of(&p["kind"]),
                    text_of(&p["uploaded_at"])
                )?;
            }
        }
        crate::PluginCommand::Inspect { .. }
        | crate::PluginCommand::New(_)
        | crate::PluginCommand::Build(_)
        | crate::PluginCommand::Test(_) => {
            bail!("this `weft plugin` command works on local files: run it without --server")
        }
    }
    Ok(())
}
