//! `weft serve`: the arguments, and the lines the server's events become. What serving is lives
//! in `weft-server`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use weft_capabilities::{MasterKey, Secrets};
use weft_engine::RunOptions;
use weft_server::{Cause, Event, LoadError, LoadOptions, Registration, Server};

#[derive(Args)]
pub struct ServeArgs {
    /// The directory of flow files to serve.
    #[arg(long, default_value = "flows")]
    flows: PathBuf,
    /// Run with this environment's variables and connections.
    #[arg(long)]
    env: Option<String>,
    /// Where plugins named in flows are found (repeatable).
    #[arg(long = "plugins")]
    plugin_dirs: Vec<PathBuf>,
    /// A variable's value, over the environment's and the default (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = crate::parse_var)]
    vars: Vec<(String, String)>,
    /// Address the webhook endpoints listen on (when a flow has a webhook trigger).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: std::net::SocketAddr,
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
    let flows = weft_server::load(&args.flows, &options)
        .await
        .inspect_err(|e| {
            if let LoadError::Problems { problems, .. } = e {
                eprint!("{problems}");
            }
        })?;
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
    let count = flows.len();
    let mut server = Server::new(flows, store, secrets, options).on_event(say);
    if let Some(url) = &args.public_url {
        server = server.with_public_url(url);
    }
    eprintln!(
        "serving {count} flow(s) from {}; Ctrl-C stops",
        args.flows.display()
    );
    if server.has_webhooks() {
        let address = server.listen(args.listen).await?;
        eprintln!("webhooks on http://{address}/hooks/{{flow}}");
        if args.public_url.is_none() {
            eprintln!(
                "webhook endpoints are not registered with their vendors (no --public-url): register them by hand or restart with it"
            );
        }
    }
    server.run(shutdown_signal()).await?;
    eprintln!("stopped");
    Ok(())
}

/// An event of the server as a line: runs on stdout, registrations on stderr.
fn say(event: &Event) {
    match event {
        Event::RunEnded(run) => {
            let now = humantime::format_rfc3339_seconds(SystemTime::now());
            let (flow, id, status) = (&run.flow, &run.run, run.status);
            // Output to a closed pipe is not the server's concern: it keeps serving.
            let _ = match run.cause {
                Cause::Webhook { events } => {
                    out!("{now} flow {flow} run {id} {status} for {events} webhook event(s)")
                }
                Cause::Schedule | Cause::Chain { .. } => out!(
                    "{now} flow {flow} run {id} {status}: {} read, {} written, {} failed ({:.1} s)",
                    run.read,
                    run.written,
                    run.failed,
                    run.took.as_secs_f64()
                ),
            };
        }
        Event::Deferred {
            flow,
            error,
            retry_at,
        } => {
            let at = humantime::format_rfc3339_seconds(*retry_at);
            eprintln!("flow {flow} not run: {error}; trying again at {at}");
        }
        Event::Registered { flow, registration } => {
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
