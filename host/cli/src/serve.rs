//! `weft serve`: the arguments, and the lines the server's events become. What serving is lives
//! in `weft-server`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use weft_api::Api;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::RunOptions;
use weft_server::{
    Cause, Event, LoadError, LoadOptions, Quotas, Registration, Server, TenantPlugins, TenantPolicy,
};

#[derive(Args)]
pub struct ServeArgs {
    /// A directory of flow files to serve, for the tenant `--tenant` (every one is checked and
    /// planned first: one with problems stops the server). Without it, the server runs only the
    /// flows tenants deploy through its API.
    #[arg(long)]
    flows: Option<PathBuf>,
    /// Run with this environment's variables and connections.
    #[arg(long)]
    env: Option<String>,
    /// Also look for the plugins flows name here (repeatable), before the data directory's
    /// `plugins/` and this checkout's built plugins.
    #[arg(long = "plugins")]
    plugin_dirs: Vec<PathBuf>,
    /// A variable's value, over the environment's and the default (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::parse_var)]
    vars: Vec<(String, String)>,
    /// Address the API (`/api/v1`) and the webhook endpoints (`/hooks/{flow}` for the flows
    /// directory's flows, `/hooks/{endpoint}` for deployed ones) listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
    /// Let flows tenants deploy through the API reach private addresses (loopback, private
    /// ranges) when their egress rules ask to: for servers whose tenants use a local sandbox,
    /// not for strangers' flows.
    #[arg(long)]
    tenant_private_egress: bool,
    /// Runs at once, at most. With more than one, scheduled runs leave one worker to webhook
    /// events and runs asked for through the API.
    #[arg(long, default_value_t = weft_server::DEFAULT_WORKERS)]
    workers: usize,
    /// How long, once told to stop (SIGTERM, Ctrl-C), runs under way may take to finish; those
    /// still going then resume from their last checkpoint at the next start.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    shutdown_grace: std::time::Duration,
    /// A quota for every tenant without its own (repeatable): concurrent_runs, runs_per_hour,
    /// cpu_ms_per_hour, requests_per_hour, bytes_per_hour, records_per_day, flows, plugin_bytes,
    /// dataset_rows. Unset: no limit. `weft tenant quota` sets a tenant's own.
    #[arg(long = "quota", value_name = "NAME=VALUE", value_parser = Quotas::parse_setting)]
    quotas: Vec<(weft_server::Quota, u64)>,
    /// The URL vendors reach the webhook endpoints at (e.g. `https://weft.example.com`, in
    /// front of `--listen`). When given, each webhook-triggered flow's endpoint is registered
    /// with its vendor at start, for the trigger's events, and kept registered.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

pub async fn run(data_dir: &Path, tenant: &str, args: ServeArgs) -> anyhow::Result<()> {
    let plugins = crate::plugin_directory(data_dir, args.plugin_dirs.clone());
    let runtime = crate::runtime(data_dir)?;
    let options = LoadOptions {
        tenant,
        environment: args.env.as_deref(),
        variables: &args.vars,
        plugins: &plugins,
        runtime: &runtime,
    };
    // Every problem of every flow is said before the summary the error carries.
    let flows = match &args.flows {
        Some(dir) => weft_server::load(dir, &options).await.inspect_err(|e| {
            if let LoadError::Problems { problems, .. } = e {
                eprint!("{problems}");
            }
        })?,
        None => Vec::new(),
    };
    let store = crate::store(data_dir).await?;
    let secrets = Secrets::new(
        store.clone(),
        MasterKey::load(data_dir).context("loading the master key")?,
    );
    let options = RunOptions {
        tenant: tenant.to_owned(),
        environment: args.env.clone(),
        lease: crate::run::lease(),
        ..RunOptions::default()
    };
    let policy = TenantPolicy {
        allow_private_egress: args.tenant_private_egress,
    };
    let mut quotas = Quotas::default();
    for (quota, limit) in &args.quotas {
        quotas.set(*quota, *limit);
    }
    // Tenants' uploaded plugins are written here, by digest, to be loaded.
    let tenant_plugins = TenantPlugins::new(store.clone(), data_dir.join("tenant-plugins"));
    let api = Api::new(
        store.clone(),
        secrets.clone(),
        plugins.clone(),
        tenant_plugins.clone(),
        runtime.clone(),
    )
    .with_policy(policy)
    .with_quotas(quotas.clone());
    let count = flows.len();
    let home = tenant.to_owned();
    let mut server = Server::new(flows, store, secrets, options)
        .with_deployed(plugins, tenant_plugins, runtime, policy, api.changes())
        .with_workers(args.workers)
        .with_quotas(quotas)
        .with_shutdown_grace(args.shutdown_grace)
        .on_event(move |e| say(&home, e));
    if let Some(url) = &args.public_url {
        server = server.with_public_url(url);
    }
    match &args.flows {
        Some(dir) => eprintln!(
            "serving {count} flow(s) from {}, and the flows tenants deploy; Ctrl-C stops",
            dir.display()
        ),
        None => eprintln!("serving the flows tenants deploy; Ctrl-C stops"),
    }
    let api = api.with_metrics(server.metrics());
    let address = server.listen_with(args.listen, api.router()).await?;
    eprintln!("API on http://{address}/api/v1 (its OpenAPI document: /api/v1/openapi.json)");
    if server.has_webhooks() {
        eprintln!("webhooks on http://{address}/hooks/{{flow}}");
        if args.public_url.is_none() {
            eprintln!(
                "webhook endpoints are not registered with their vendors (no --public-url): register them by hand or restart with it"
            );
        }
    }
    let grace = args.shutdown_grace;
    server
        .run(async move {
            shutdown_signal().await;
            eprintln!(
                "stopping: starting nothing more; runs under way may finish within {}",
                humantime::format_duration(grace)
            );
        })
        .await?;
    eprintln!("stopped");
    Ok(())
}

/// A flow as the lines name it: by name for the server's own tenant, `tenant/name` for another.
fn named(home: &str, tenant: &str, flow: &str) -> String {
    if tenant == home {
        flow.to_owned()
    } else {
        format!("{tenant}/{flow}")
    }
}

/// An event of the server as a line: runs on stdout, registrations on stderr.
fn say(home: &str, event: &Event) {
    match event {
        Event::RunEnded(run) => {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            let flow = named(home, &run.tenant, &run.flow);
            let (id, status) = (&run.run, run.status);
            // Output to a closed pipe is not the server's concern: it keeps serving.
            let _ = match &run.cause {
                Cause::Webhook { events } => {
                    out!("{now} flow {flow} run {id} {status} for {events} webhook event(s)")
                }
                Cause::Retry { of } => out!(
                    "{now} flow {flow} run {id} {status}: retried the failed records of run {of}: {} written, {} failed ({:.1} s)",
                    run.written,
                    run.failed,
                    run.took.as_secs_f64()
                ),
                Cause::Schedule | Cause::Chain { .. } | Cause::Requested => out!(
                    "{now} flow {flow} run {id} {status}: {} read, {} written, {} failed ({:.1} s)",
                    run.read,
                    run.written,
                    run.failed,
                    run.took.as_secs_f64()
                ),
            };
        }
        Event::Deferred {
            tenant,
            flow,
            error,
            retry_at,
        } => {
            let at = humantime::format_rfc3339_seconds(*retry_at);
            let flow = named(home, tenant, flow);
            eprintln!("flow {flow} not run: {error}; trying again at {at}");
        }
        Event::Registered {
            tenant,
            flow,
            registration,
        } => {
            let flow = named(home, tenant, flow);
            let s = registration.subscription();
            let what = match registration {
                Registration::Kept(_) => "registered already",
                Registration::Made(_) => "registered",
            };
            eprintln!(
                "webhook of flow {flow}: {what} ({}) at {}",
                s.subscription_id, s.callback_url
            );
        }
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
