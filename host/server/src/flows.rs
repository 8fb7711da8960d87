//! The flows a server runs: every `*.toml` of a directory, checked and planned before anything
//! starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use weft_capabilities::SecretRef;
use weft_engine::{Plan, PlanOptions, PluginDirectory};
use weft_flow::{Diagnostic, Flow, FlowError};
use weft_runtime::Runtime;

/// A flow and its plan, as the server runs it, for the tenant that owns it.
pub struct ServedFlow {
    pub tenant: String,
    pub flow: Flow,
    pub plan: Plan,
    /// Its tenant and name, made once: the server looks flows up by it every turn.
    key: FlowKey,
    /// A deployed flow's webhook endpoint id (`/hooks/{endpoint}`); a flows directory's flow
    /// has none and is reached by its name.
    endpoint: Option<String>,
}

/// A served flow's identity: its tenant and its name.
pub type FlowKey = (String, String);

impl ServedFlow {
    pub fn name(&self) -> &str {
        self.flow.file.name.get_ref().as_str()
    }

    pub fn new(tenant: impl Into<String>, flow: Flow, plan: Plan) -> Self {
        let tenant = tenant.into();
        let key = (tenant.clone(), flow.file.name.get_ref().to_string());
        ServedFlow {
            tenant,
            flow,
            plan,
            key,
            endpoint: None,
        }
    }

    /// This flow, reached at `/hooks/{endpoint}`.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    pub fn key(&self) -> &FlowKey {
        &self.key
    }

    /// What its webhook endpoint is reached by, under `/hooks/`: the endpoint id of a deployed
    /// flow, the name of a flows directory's.
    pub fn hook_id(&self) -> &str {
        self.endpoint.as_deref().unwrap_or(self.name())
    }

    /// A deployed flow's webhook endpoint id.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The webhook trigger's connection and the events it asks for, if the flow has one.
    pub fn webhook(&self) -> Option<(&str, &[String])> {
        Self::webhook_of(&self.flow)
    }

    fn webhook_of(flow: &Flow) -> Option<(&str, &[String])> {
        let webhook = flow
            .file
            .trigger
            .as_ref()?
            .get_ref()
            .webhook
            .as_ref()?
            .get_ref();
        Some((webhook.connection.get_ref().as_str(), &webhook.events))
    }

    /// Whether this flow runs after `flow` in a job chain (`after = [...]` names it).
    pub fn follows(&self, flow: &str) -> bool {
        self.flow
            .file
            .after
            .iter()
            .any(|a| a.get_ref().as_str() == flow)
    }
}

/// How the flows of a directory are planned.
pub struct LoadOptions<'a> {
    pub tenant: &'a str,
    pub environment: Option<&'a str>,
    /// `--var` values: each flow gets those it declares; one no flow declares is a problem.
    pub variables: &'a [(String, String)],
    pub plugins: &'a PluginDirectory,
    pub runtime: &'a Runtime,
}

/// Why the flows of a directory cannot be served; nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the flows directory {}: {source}", dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("no flow files (*.toml) in {}", dir.display())]
    Empty { dir: PathBuf },
    #[error("{} problem(s) in the flows of {}; nothing was started", problems.count(), dir.display())]
    Problems { dir: PathBuf, problems: Problems },
}

/// Everything wrong with a directory's flows, each said in full by its `Display`.
#[derive(Debug, Default)]
pub struct Problems {
    /// Flows that do not load or plan, with their diagnostics.
    pub flows: Vec<FlowError>,
    /// `--var` names no flow of the directory declares.
    pub undeclared_variables: Vec<String>,
    dir: PathBuf,
}

impl Problems {
    pub fn count(&self) -> usize {
        self.flows
            .iter()
            .map(|e| e.diagnostics.len())
            .sum::<usize>()
            + self.undeclared_variables.len()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for flow in &self.flows {
            write!(f, "{flow}")?;
        }
        for name in &self.undeclared_variables {
            writeln!(
                f,
                "error: `--var {name}=...` names a variable no flow in {} declares",
                self.dir.display()
            )?;
        }
        Ok(())
    }
}

/// Loads and plans every flow file of `dir`, in name order: all of them, or the problems of
/// every one that fails.
pub async fn load(dir: &Path, options: &LoadOptions<'_>) -> Result<Vec<ServedFlow>, LoadError> {
    let mut served = Vec::new();
    let mut problems = Problems {
        dir: dir.to_owned(),
        ..Problems::default()
    };
    let mut used = BTreeSet::new();
    for file in flow_files(dir)? {
        let flow = match weft_flow::load(&file) {
            Ok(flow) => flow,
            Err(e) => {
                problems.flows.push(e);
                continue;
            }
        };
        let plan_options = plan_options(&flow, options, &mut used);
        match weft_engine::plan_with(&flow, &plan_options, options.plugins, options.runtime).await {
            Ok(plan) => served.push(ServedFlow::new(options.tenant, flow, plan)),
            Err(e) => problems.flows.push(e),
        }
    }
    problems.undeclared_variables = options
        .variables
        .iter()
        .filter(|(name, _)| !used.contains(name))
        .map(|(name, _)| name.clone())
        .collect();
    if problems.count() > 0 {
        return Err(LoadError::Problems {
            dir: dir.to_owned(),
            problems,
        });
    }
    if served.is_empty() {
        return Err(LoadError::Empty {
            dir: dir.to_owned(),
        });
    }
    Ok(served)
}

/// How `flow` is planned: the server's environment and the variables the flow declares (noted
/// in `used`).
fn plan_options(
    flow: &Flow,
    options: &LoadOptions<'_>,
    used: &mut BTreeSet<String>,
) -> PlanOptions {
    let declared = |name: &str| {
        flow.file
            .variables
            .keys()
            .any(|k| k.get_ref().as_str() == name)
    };
    let variables: BTreeMap<String, String> = options
        .variables
        .iter()
        .filter(|(name, _)| declared(name))
        .cloned()
        .collect();
    used.extend(variables.keys().cloned());
    PlanOptions {
        environment: options.environment.map(str::to_owned),
        tenant: options.tenant.to_owned(),
        variables,
    }
}

fn flow_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Directory {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// What an operator lets tenants' deployed flows do beyond the defaults. A deployed flow is
/// written by a tenant, not by the operator: it may not read the server's environment
/// (`env:NAME` credentials) and, unless allowed here, may not reach private addresses (the
/// operator's own network, cloud metadata).
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantPolicy {
    /// Whether a deployed flow's egress rules may set `allow_private` (e.g. a server whose
    /// tenants use the local sandbox).
    pub allow_private_egress: bool,
}

/// A flow a tenant deploys: its file's text and the values of the variables it declares.
pub struct Deployment<'a> {
    pub tenant: &'a str,
    pub source: &'a str,
    pub variables: &'a BTreeMap<String, String>,
}

/// Checks and plans a deployed flow as the server will run it: the file, the flow bound to its
/// plugins, the variables, then what [`TenantPolicy`] forbids. Every problem comes back as
/// diagnostics pointing into the source (`flow.toml` in messages), as `weft validate` says them.
pub async fn plan_deployed(
    deployment: &Deployment<'_>,
    plugins: &PluginDirectory,
    runtime: &Runtime,
    policy: TenantPolicy,
) -> Result<ServedFlow, FlowError> {
    let path = Path::new("flow.toml");
    let flow = weft_flow::parse(path, deployment.source)?;
    let undeclared: Vec<Diagnostic> = deployment
        .variables
        .keys()
        .filter(|name| {
            !flow
                .file
                .variables
                .keys()
                .any(|k| k.get_ref().as_str() == *name)
        })
        .map(|name| {
            Diagnostic::new(
                format!("variable `{name}` is given a value but the flow does not declare it"),
                None,
            )
            .help("declare it under [variables], or leave it out")
        })
        .collect();
    if !undeclared.is_empty() {
        return Err(flow.error(undeclared));
    }
    let options = PlanOptions {
        environment: None,
        tenant: deployment.tenant.to_owned(),
        variables: deployment.variables.clone(),
    };
    let plan = weft_engine::plan_with(&flow, &options, plugins, runtime).await?;
    let refused = refusals(&plan, policy);
    if !refused.is_empty() {
        return Err(flow.error(refused));
    }
    Ok(ServedFlow::new(deployment.tenant, flow, plan))
}

/// What `policy` forbids in a planned deployed flow.
fn refusals(plan: &Plan, policy: TenantPolicy) -> Vec<Diagnostic> {
    let mut refused = Vec::new();
    for bound in plan.connections.values() {
        let spec = &bound.spec;
        let references = spec
            .auth
            .references()
            .into_iter()
            .chain(&spec.webhook_secret);
        for reference in references {
            if let SecretRef::Env(name) = reference {
                refused.push(
                    Diagnostic::new(
                        format!("connection `{}` takes a credential from the server's environment (`env:{name}`), which a deployed flow may not read", spec.name),
                        None,
                    )
                    .help(format!("store it as a secret of the tenant (PUT /api/v1/secrets/{name}) and write `secret:{name}`")),
                );
            }
        }
        for rule in spec.egress.iter().filter(|r| r.allows_private()) {
            if !policy.allow_private_egress {
                refused.push(
                    Diagnostic::new(
                        format!("connection `{}` allows private addresses for {rule}, which this server does not allow deployed flows", spec.name),
                        None,
                    )
                    .help("reach the service at a public address, or ask the operator to allow private egress (`weft serve --tenant-private-egress`)"),
                );
            }
        }
    }
    refused
}
