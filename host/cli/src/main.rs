//! `weft`: the command line. A thin layer over the library crates; the only place `anyhow` is
//! used.

/// `println!` that returns the write's `io::Result`, so output to a closed pipe
/// (`weft dataset export X | head -1`) ends the command quietly instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` likewise: text that ends its own lines.
macro_rules! put {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod authoring;
mod connections;
mod dataset;
mod demo;
mod hosts;
mod inspect;
mod outcome;
mod plugin;
mod remote;
mod run;
mod runs;
mod sandbox;
mod secret;
mod serve;
mod tenant;
mod validate;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "A sandboxed integration runtime: WebAssembly connectors and transforms, run as flows."
)]
struct Cli {
    /// Where weft keeps its database, master key and compiled-plugin cache.
    #[arg(long, global = true, env = "WEFT_DATA_DIR", default_value = ".weft")]
    data_dir: PathBuf,

    /// The tenant secrets and state belong to.
    #[arg(long, global = true, env = "WEFT_TENANT", default_value = "default")]
    tenant: String,

    /// A weft server to work with instead of the local data directory (`weft flows`, `weft
    /// runs`, `weft secret`), as the tenant whose API token is in `WEFT_TOKEN`.
    #[arg(long, global = true, env = "WEFT_SERVER", value_name = "URL")]
    server: Option<String>,

    /// How log lines are written to stderr: `text` for people, `json` (one object a line, with
    /// the tenant, flow, run, step, plugin and connection of each) for a log collector.
    #[arg(long, global = true, env = "WEFT_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Check a flow file without running it: syntax, names, references, cycles, secrets.
    Validate(FlowArgs),
    /// Print the JSON Schema of flow files, for editors to complete and check them.
    Schema,
    /// Run a flow once, with live progress and a summary.
    Run {
        #[command(flatten)]
        flow: FlowArgs,
        /// When another run of the flow holds it, wait for it to end instead of exiting.
        #[arg(long)]
        wait: bool,
    },
    /// Each connection of a flow: whether its check passes, its credential kind, when its token
    /// expires.
    Connections(FlowArgs),
    /// Run scheduled flows and their job chains until stopped.
    Serve(serve::ServeArgs),
    /// Flows deployed to a server (with `--server`): deploy, list, show, enable, disable,
    /// delete, run now.
    Flows {
        #[command(subcommand)]
        command: remote::FlowsCommand,
    },
    /// Past runs: list, show one, download its error log.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Datasets flows keep in weft's own store: list, show, export, import.
    Dataset {
        #[command(subcommand)]
        command: dataset::DatasetCommand,
    },
    /// Webhook registrations with vendors, as `weft serve --public-url` makes them.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Manage the encrypted secrets flows refer to as `secret:NAME`.
    Secret {
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Tenants of a multi-tenant server and their API tokens (the operator's).
    Tenant {
        #[command(subcommand)]
        command: tenant::TenantCommand,
    },
    /// Start local emulators of every supported SaaS API and wait until Ctrl-C.
    Sandbox(sandbox::SandboxArgs),
    /// Build the plugins, start the sandbox with demo data, run every scenario of `examples/`
    /// against it, and summarise per scenario.
    Demo(demo::DemoArgs),
}

/// A flow file and how to plan it: what `validate`, `run`, `connections` and
/// `webhook remove` take.
#[derive(clap::Args)]
pub struct FlowArgs {
    /// The flow file.
    pub file: PathBuf,
    /// Use this environment's variables and connections.
    #[arg(long)]
    pub env: Option<String>,
    /// A variable's value, over the environment's and the default (repeatable).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Also look for the plugins flows name here (repeatable), before the data directory's
    /// `plugins/` and this checkout's built plugins; a component here is found by the name and
    /// version its describe gives, as an installed one is.
    #[arg(long = "plugins")]
    pub plugin_dirs: Vec<PathBuf>,
}

impl FlowArgs {
    /// The flow file, the plugin directory and the plan options these arguments choose.
    pub async fn plan(
        self,
        data_dir: &std::path::Path,
        tenant: &str,
    ) -> anyhow::Result<(
        PathBuf,
        weft_engine::PluginDirectory,
        weft_engine::PlanOptions,
    )> {
        let plugins = plugin::described(
            data_dir,
            plugin_directory(data_dir, self.plugin_dirs.clone()),
            &self.plugin_dirs,
        )
        .await?;
        let options = weft_engine::PlanOptions {
            environment: self.env,
            tenant: tenant.to_owned(),
            variables: self.vars.into_iter().collect(),
        };
        Ok((self.file, plugins, options))
    }
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Show what a plugin is: kind, name, version, contract, streams and schemas, auth, hosts.
    Inspect {
        /// The component, e.g. plugins/target/wasm32-wasip2/release/weft_plugin_map.wasm
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a component and keep it in the data directory's plugins/ as NAME@VERSION.wasm,
    /// named as its describe says; flows name it `NAME` (the highest version) or pin one
    /// (`NAME@1.2`). With --server, upload it as the tenant's own plugin instead.
    Install {
        /// The component, e.g. target/wasm32-wasip2/release/bookshelf_connector.wasm
        file: PathBuf,
        /// Overwrite an installed version built differently.
        #[arg(long)]
        replace: bool,
    },
    /// The plugins flows can name: each component on the search path with its name, version
    /// and kind (with --server, the tenant's own).
    List {
        /// Also look here, first (repeatable).
        #[arg(long = "plugins")]
        plugin_dirs: Vec<PathBuf>,
    },
    /// Make a plugin project from a template: a connector or a transform in Rust,
    /// JavaScript or Python that builds and passes `weft plugin test` as made.
    New(authoring::NewArgs),
    /// Build the plugin project here (or --project DIR) as its weft-plugin.toml says.
    Build(authoring::BuildArgs),
    /// Run the conformance checks on a component: a connector against the sandbox or a URL,
    /// a transform over sample records; in a project, its weft-plugin.toml gives the defaults.
    Test(authoring::TestArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The examples' `sandbox` environments carry the sandbox's published demo credentials
    // literally, so the demo does not warn about each of them.
    // So does `weft plugin test` with the sandbox's or its own credentials.
    let default_filter = if matches!(
        cli.command,
        Command::Demo(_)
            | Command::Plugin {
                command: PluginCommand::Test(_)
            }
    ) {
        "warn,weft_capabilities::connection=error"
    } else {
        "warn"
    };
    // `WEFT_LOG`, else the ecosystem's `RUST_LOG`, else warnings only.
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| default_filter.into());
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a person at a terminal, not into a log file or a pipe.
        LogFormat::Text => logger
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logger
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing more to say to anyone.
        Err(error)
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        // Completed, with records left in the error log: said plainly, with its own code.
        Err(error) if error.downcast_ref::<outcome::RecordsFailed>().is_some() => {
            eprintln!("{error}");
            outcome::RecordsFailed::exit_code()
        }
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `NAME=VALUE` of `--var`.
fn parse_var(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(server) = &cli.server {
        return remote::run(server, cli.command).await;
    }
    match cli.command {
        Command::Plugin { command } => match command {
            PluginCommand::Inspect { file, json } => inspect::run(&cli.data_dir, &file, json).await,
            PluginCommand::Install { file, replace } => {
                plugin::install(&cli.data_dir, &file, replace).await
            }
            PluginCommand::List { plugin_dirs } => plugin::list(&cli.data_dir, plugin_dirs).await,
            PluginCommand::New(args) => authoring::new(args),
            PluginCommand::Build(args) => authoring::build(args),
            PluginCommand::Test(args) => authoring::test(&cli.data_dir, args).await,
        },
        Command::Validate(args) => {
            let (file, plugins, options) = args.plan(&cli.data_dir, &cli.tenant).await?;
            validate::run(&cli.data_dir, &file, &options, &plugins).await
        }
        Command::Run { flow, wait } => {
            let (file, plugins, options) = flow.plan(&cli.data_dir, &cli.tenant).await?;
            run::run(&cli.data_dir, &file, &options, &plugins, wait).await
        }
        Command::Connections(args) => {
            let (file, plugins, options) = args.plan(&cli.data_dir, &cli.tenant).await?;
            connections::run(&cli.data_dir, &file, &options, &plugins).await
        }
        Command::Schema => {
            out!(
                "{}",
                serde_json::to_string_pretty(&weft_flow::json_schema())?
            )?;
            Ok(())
        }
        Command::Dataset { command } => dataset::run(&cli.data_dir, &cli.tenant, command).await,
        Command::Serve(args) => serve::run(&cli.data_dir, &cli.tenant, args).await,
        Command::Runs { command } => runs::run(&cli.data_dir, &cli.tenant, command).await,
        Command::Flows { .. } => anyhow::bail!(
            "`weft flows` works with a server: give `--server URL` (or WEFT_SERVER) and the tenant's API token in WEFT_TOKEN"
        ),
        Command::Secret { command } => secret::run(&cli.data_dir, &cli.tenant, command).await,
        Command::Webhook { command } => webhook::run(&cli.data_dir, &cli.tenant, command).await,
        Command::Tenant { command } => tenant::run(&cli.data_dir, command).await,
        Command::Sandbox(args) => sandbox::run(args, &cli.data_dir).await,
        Command::Demo(args) => demo::run(&cli.data_dir, args).await,
    }
}

/// Where plugins are looked for: the `--plugins` directories first, in the order given, then
/// the data directory's `plugins/` and this checkout's built plugins.
fn plugin_directory(
    data_dir: &std::path::Path,
    dirs: Vec<PathBuf>,
) -> weft_engine::PluginDirectory {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../plugins/target/wasm32-wasip2/release");
    weft_engine::PluginDirectory::new(dirs.into_iter().chain([data_dir.join("plugins"), built]))
}

/// The store: PostgreSQL when `WEFT_DATABASE_URL` names one (several weft processes can share
/// it), otherwise the SQLite file `weft.db` in the data directory, created on first use.
async fn store(data_dir: &std::path::Path) -> anyhow::Result<weft_store::Store> {
    use anyhow::Context;
    match std::env::var("WEFT_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    {
        Some(url) => weft_store::Store::open_postgres(&url)
            .await
            .context("opening the PostgreSQL store (WEFT_DATABASE_URL)"),
        None => {
            private_data_dir(data_dir)?;
            let path = data_dir.join("weft.db");
            weft_store::Store::open_sqlite(&path)
                .await
                .with_context(|| format!("opening the store {}", path.display()))
        }
    }
}

/// The data directory holds the store, the master key and compiled plugins: the owner's only,
/// also when an older version created it open to others.
fn private_data_dir(data_dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    weft_store::private_dir(data_dir).with_context(|| {
        format!(
            "making the data directory {} (private, mode 0700)",
            data_dir.display()
        )
    })
}

/// The runtime the commands use: default limits, compiled components cached under the data
/// directory.
fn runtime(data_dir: &std::path::Path) -> anyhow::Result<weft_runtime::Runtime> {
    Ok(weft_runtime::Runtime::new(weft_runtime::RuntimeConfig {
        limits: weft_runtime::Limits::default(),
        cache_dir: Some(data_dir.join("cache/components")),
    })?)
}
