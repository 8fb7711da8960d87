//! `weft demo`: the whole path a flow takes, on this machine and nothing else. It builds the
//! first-party plugins, starts the sandbox emulators, reads Zendesk tickets through the
//! `http-json` connector (the host resolves, checks egress and attaches the Zendesk API token;
//! the plugin never sees it), maps them to Zoho-style cases with the `map` transform, and prints
//! what happened.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use weft_capabilities::{AuthSpec, Connection, Connections, HostRule, MasterKey, Secret, SecretRef, Secrets};
use weft_runtime::bindings::SyncMode;
use weft_runtime::{Batch, CallContext, ReadRequest};
use weft_sandbox::{Sandbox, SandboxConfig, Vendor};

#[derive(Args)]
pub struct DemoArgs {
    /// Use the components in this directory instead of building `plugins/`.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Tickets the sandbox generates.
    #[arg(long, default_value_t = 250)]
    tickets: u64,
    /// Records per page read from Zendesk.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
}

/// The checkout this binary was built from: `plugins/` lives there.
fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_plugins() -> anyhow::Result<PathBuf> {
    let workspace = checkout().join("plugins");
    let started = Instant::now();
    eprintln!("building plugins in {} ...", workspace.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&workspace)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .status()
        .context("running cargo to build the plugins")?;
    if !status.success() {
        bail!("building the plugins failed (see above); is the target installed? `rustup target add wasm32-wasip2`");
    }
    eprintln!("built in {:.1} s", started.elapsed().as_secs_f64());
    Ok(workspace.join("target/wasm32-wasip2/release"))
}

pub async fn run(data_dir: &Path, args: DemoArgs) -> anyhow::Result<()> {
    let plugins = match args.plugins {
        Some(dir) => dir,
        None => build_plugins()?,
    };
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;

    let mut config = SandboxConfig::default();
    config.data.size.tickets = args.tickets;
    let sandbox = Sandbox::start(config).await.context("starting the sandbox")?;
    let zendesk = sandbox.vendor(Vendor::Zendesk).context("the sandbox has no Zendesk emulator")?;
    let credentials = zendesk.credentials();
    println!("sandbox   {} emulators on loopback; Zendesk at {}", sandbox.vendors().count(), zendesk.base_url());

    let runtime = crate::runtime(data_dir)?;
    let connector = runtime
        .load_file(plugins.join("weft_plugin_http_json.wasm"))
        .await?
        .into_connector()
        .context("weft_plugin_http_json.wasm is not a connector")?;
    let map = runtime
        .load_file(plugins.join("weft_plugin_map.wasm"))
        .await?
        .into_transform()
        .context("weft_plugin_map.wasm is not a transform")?;
    for (name, report) in [(&connector.info().name, connector.load_report()), (&map.info().name, map.load_report())] {
        let how = match report.outcome {
            weft_runtime::CacheOutcome::Compiled => "compiled",
            weft_runtime::CacheOutcome::Cached => "from cache",
        };
        println!("plugin    {name:<10} {how} in {} ms", report.took.as_millis());
    }

    // The connection a flow file would declare: the sandbox's Zendesk, API-token auth, and an
    // explicit egress rule for its loopback address (plain http, private address).
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(store.clone(), MasterKey::load(data_dir)?);
    secrets.set("default", "demo_zendesk_token", &Secret::new(credentials.api_token.clone().unwrap_or_default())).await?;
    let zendesk_config = json!({
        "base_url": format!("{}/api/v2", zendesk.base_url()),
        "records_field": "tickets",
        "page_size_param": "per_page",
        "next_url": "/next_page",
        "check_path": "/users/me",
    });
    let username = credentials.extra.get("basic_auth_user").cloned().unwrap_or_else(|| format!("{}/token", credentials.username));
    let auth = AuthSpec::Basic { username, password: SecretRef::Stored("demo_zendesk_token".into()) };
    let host = zendesk.base_url().trim_start_matches("http://");
    let rule = HostRule::parse(host)?.allow_http(true).allow_private(true);
    let spec = connector.connection_spec("zendesk", "default", zendesk_config.clone(), auth, vec![rule])?;
    let mut connections = Connections::new();
    connections.insert(Connection::new(spec, secrets.clone())?);
    let context = CallContext::new("default").with_connections(connections).with_store(store).in_flow("demo");

    connector.check(&context, "zendesk", &zendesk_config).await.context("checking the Zendesk connection")?;

    let mapping = json!({
        "fields": {"Subject": "subject", "Zendesk_Ticket_ID": "id", "Priority": "priority", "Requester_ID": "requester_id"},
        "constants": {"Source": "zendesk"},
        "case": {"Status": {"from": "status", "map": {"new": "Active", "open": "Active", "pending": "Active", "hold": "Active"}, "default": "Inactive"}}
    })
    .to_string();

    let started = Instant::now();
    let (mut cursor, mut pages, mut read, mut mapped, mut rejected) = (None, 0, 0usize, 0usize, 0usize);
    let mut sample = None;
    loop {
        let request = ReadRequest {
            stream: "tickets".into(),
            mode: SyncMode::Full,
            cursor: cursor.take(),
            page_size: Some(args.page_size),
            options: "{}".into(),
        };
        let page = connector.read(&context, "zendesk", &zendesk_config, request).await.context("reading tickets")?;
        let records: Vec<Value> = serde_json::from_str(&page.records)?;
        pages += 1;
        read += records.len();
        let result = map
            .process(&context, Batch { config: mapping.clone(), records: page.records, lookup: None })
            .await
            .context("mapping tickets")?;
        let cases: Vec<Value> = serde_json::from_str(&result.records)?;
        mapped += cases.len();
        rejected += result.rejects.len();
        if sample.is_none() {
            sample = cases.into_iter().next();
        }
        eprintln!("  page {pages}: {} tickets read, {read} so far", records.len());
        if page.done {
            break;
        }
        cursor = page.next_cursor;
    }
    let took = started.elapsed();
    let upstream_requests =
        sandbox.requests(Some(Vendor::Zendesk)).iter().filter(|r| r.uri.starts_with("/api/v2/tickets")).count();

    println!();
    println!("zendesk tickets -> cases");
    println!("  read       {read} tickets in {pages} pages ({upstream_requests} requests to the Zendesk emulator)");
    println!("  mapped     {mapped} cases, {rejected} rejected");
    println!("  time       {:.0} ms, {:.0} records/s", took.as_secs_f64() * 1e3, read as f64 / took.as_secs_f64());
    if let Some(case) = sample {
        println!("  first case {case}");
    }
    println!();
    println!("Look further: `weft sandbox` serves the emulators until Ctrl-C; `weft plugin inspect FILE.wasm` describes a plugin.");
    if read as u64 != args.tickets {
        bail!("read {read} tickets but the sandbox holds {}", args.tickets);
    }
    sandbox.shutdown().await;
    Ok(())
}
