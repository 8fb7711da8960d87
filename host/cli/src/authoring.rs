//! `weft plugin new`, `weft plugin build` and `weft plugin test`: a plugin project from its
//! template to a component that passes the conformance checks.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::Value;
use weft_authoring::{Kind, Language, MANIFEST, Manifest, TestSection};
use weft_capabilities::{AuthSpec, MasterKey, Secrets};
use weft_conformance::Report;
use weft_conformance::connector::{self, Against, Target, Upstream};
use weft_conformance::transform::{self, Sample};

#[derive(Args)]
pub struct NewArgs {
    /// The plugin's name, as flows will name it: a-z, 0-9, '-' and '_', starting with a letter.
    name: String,
    /// connector (an API: streams read and written) or transform (records in, records out).
    #[arg(long)]
    kind: Kind,
    /// rust, js or python.
    #[arg(long = "lang")]
    language: Language,
    /// Where to make the project (default: ./NAME); must be new or empty.
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct BuildArgs {
    /// The project's directory (default: the current one).
    #[arg(long)]
    project: Option<PathBuf>,
}

#[derive(Args)]
pub struct TestArgs {
    /// The component to check (default: the project's build output).
    file: Option<PathBuf>,
    /// The project whose weft-plugin.toml says what to check against (default: the current
    /// directory, when it holds one).
    #[arg(long)]
    project: Option<PathBuf>,
    /// Connectors: the upstream, `sandbox:VENDOR` (an emulator started for the checks, with
    /// its demo data and credential) or the base URL of a running API.
    #[arg(long)]
    against: Option<String>,
    /// Connectors: the connection's config as JSON, `{url}` standing for the upstream's base
    /// URL. Transforms: the step's config as JSON.
    #[arg(long)]
    config: Option<String>,
    /// Connectors: the connection's auth as JSON, as a flow's auth table, e.g.
    /// '{"kind": "bearer", "token": "env:API_TOKEN"}'. Default: the sandbox's demo credential.
    #[arg(long)]
    auth: Option<String>,
    /// Connectors: the stream the read checks use (default: the first readable one).
    #[arg(long)]
    stream: Option<String>,
    /// Connectors: the page size reads ask for.
    #[arg(long)]
    page_size: Option<u32>,
    /// Transforms: a file holding a JSON array of sample records.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Transforms that take a lookup input: a file of its sample records.
    #[arg(long)]
    lookup: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn new(args: NewArgs) -> anyhow::Result<()> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = weft_authoring::create(&dir, &args.name, args.kind, args.language)?;
    out!(
        "made {} {} {} in {} ({} files)",
        args.language,
        args.kind,
        args.name,
        dir.display(),
        files.len()
    )?;
    out!(
        "next: cd {} && weft plugin build && weft plugin test",
        dir.display()
    )?;
    out!("(README.md there says how to install it and use it in a flow)")?;
    Ok(())
}

pub fn build(args: BuildArgs) -> anyhow::Result<()> {
    let dir = args.project.unwrap_or_else(|| PathBuf::from("."));
    let manifest = Manifest::load(&dir)?;
    let output = weft_authoring::build(&dir, &manifest)?;
    out!("built {}", output.display())?;
    Ok(())
}

/// The project a test reads its defaults from: the one named, else the current directory
/// when it is one.
fn project(args: &TestArgs) -> anyhow::Result<Option<(PathBuf, Manifest)>> {
    let dir = match &args.project {
        Some(dir) => dir.clone(),
        None if Path::new(MANIFEST).is_file() => PathBuf::from("."),
        None => return Ok(None),
    };
    let manifest = Manifest::load(&dir)?;
    Ok(Some((dir, manifest)))
}

fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not JSON: {text}"))
}

fn records_file(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must hold a JSON array of records (objects)",
            path.display()
        )
    })
}

pub async fn test(data_dir: &Path, args: TestArgs) -> anyhow::Result<()> {
    let project = project(&args)?;
    let file = match (&args.file, &project) {
        (Some(file), _) => file.clone(),
        (None, Some((dir, manifest))) => {
            let output = dir.join(&manifest.build.output);
            if !output.is_file() {
                bail!(
                    "{} is not built yet: run `weft plugin build` first",
                    output.display()
                );
            }
            output
        }
        (None, None) => bail!(
            "name the component to check, or run this in a plugin project (one with {MANIFEST})"
        ),
    };
    let defaults = project.as_ref().map(|(_, m)| &m.test);
    let relative = |p: &PathBuf| match &project {
        Some((dir, _)) => dir.join(p),
        None => p.clone(),
    };
    let runtime = crate::runtime(data_dir)?;
    let plugin = runtime
        .load_file(&file)
        .await
        .with_context(|| format!("loading {}", file.display()))?;
    let report = match plugin {
        weft_runtime::Plugin::Transform(plugin) => {
            test_transform(&plugin, &args, defaults, &relative).await?
        }
        weft_runtime::Plugin::Connector(plugin) => {
            test_connector(data_dir, &plugin, &args, defaults).await?
        }
    };
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        out!("{report}")?;
    }
    let (_, failed, _) = report.counts();
    if failed > 0 {
        bail!("{failed} conformance check(s) failed");
    }
    Ok(())
}

async fn test_transform(
    plugin: &weft_runtime::TransformPlugin,
    args: &TestArgs,
    defaults: Option<&TestSection>,
    relative: &dyn Fn(&PathBuf) -> PathBuf,
) -> anyhow::Result<Report> {
    let config = match (&args.config, defaults.and_then(|t| t.config.clone())) {
        (Some(text), _) => json_arg(text, "--config")?,
        (None, Some(config)) => config,
        (None, None) => serde_json::json!({}),
    };
    let input = args
        .input
        .clone()
        .or_else(|| defaults.and_then(|t| t.input.as_ref()).map(relative))
        .ok_or_else(|| {
            anyhow!("give sample records to check the transform over: --input FILE (a JSON array)")
        })?;
    let lookup = args
        .lookup
        .clone()
        .or_else(|| defaults.and_then(|t| t.lookup.as_ref()).map(relative));
    let sample = Sample {
        config,
        records: records_file(&input)?,
        lookup: lookup.as_deref().map(records_file).transpose()?,
    };
    Ok(transform::check(plugin, &sample).await)
}

async fn test_connector(
    data_dir: &Path,
    plugin: &weft_runtime::ConnectorPlugin,
    args: &TestArgs,
    defaults: Option<&TestSection>,
) -> anyhow::Result<Report> {
    let against: Against = args
        .against
        .clone()
        .or_else(|| defaults.and_then(|t| t.against.clone()))
        .ok_or_else(|| {
            anyhow!("say where the upstream is: --against sandbox:VENDOR or --against URL")
        })?
        .parse()
        .map_err(|e: String| anyhow!(e))?;
    let config = match (&args.config, defaults.and_then(|t| t.config.clone())) {
        (Some(text), _) => json_arg(text, "--config")?,
        (None, Some(config)) => config,
        (None, None) => bail!(
            "give the connection's config: --config '{{\"base_url\": \"{{url}}\"}}' ({{url}} stands for the upstream's address)"
        ),
    };
    let upstream = Upstream::start(&against).await.map_err(|e| anyhow!(e))?;
    let auth_json = match (&args.auth, defaults.and_then(|t| t.auth.clone())) {
        (Some(text), _) => Some(json_arg(text, "--auth")?),
        (None, auth) => auth,
    };
    let auth = match auth_json {
        Some(json) => serde_json::from_value::<AuthSpec>(json)
            .context("--auth is not an auth table a flow would accept")?,
        None => upstream.demo_auth(plugin).ok_or_else(|| {
            anyhow!(
                "give the connection's credential with --auth (JSON, as a flow's auth table): {against} has no demo credential of a kind the plugin takes"
            )
        })?,
    };
    // `secret:NAME` references resolve in the data directory's vault; anything else needs
    // no vault on disk.
    let secrets = if names_a_stored_secret(&auth) {
        Secrets::new(crate::store(data_dir).await?, MasterKey::load(data_dir)?)
    } else {
        Secrets::new(
            weft_store::Store::open_in_memory().await?,
            MasterKey::generate("weft plugin test"),
        )
    };
    let target = Target {
        config,
        auth,
        stream: args
            .stream
            .clone()
            .or_else(|| defaults.and_then(|t| t.stream.clone())),
        page_size: args
            .page_size
            .or_else(|| defaults.and_then(|t| t.page_size))
            .unwrap_or(connector::DEFAULT_PAGE_SIZE),
        secrets,
    };
    let report = connector::check(plugin, &upstream, &target).await;
    upstream.shutdown().await;
    Ok(report)
}

fn names_a_stored_secret(auth: &AuthSpec) -> bool {
    use weft_capabilities::SecretRef;
    let stored = |r: &SecretRef| matches!(r, SecretRef::Stored(_));
    match auth {
        AuthSpec::None => false,
        AuthSpec::ApiKey { value } => stored(value),
        AuthSpec::Basic { password, .. } => stored(password),
        AuthSpec::Bearer { token } => stored(token),
        AuthSpec::OAuth2Refresh {
            client_id,
            client_secret,
            refresh_token,
            ..
        } => stored(client_id) || stored(client_secret) || stored(refresh_token),
        AuthSpec::OAuth2ClientCredentials {
            client_id,
            client_secret,
            ..
        } => stored(client_id) || stored(client_secret),
        AuthSpec::JwtBearer { private_key, .. } => stored(private_key),
    }
}
