//! The flows a server runs: every `*.toml` of a directory, checked and planned before anything
//! starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use weft_engine::{Plan, PlanOptions, PluginDirectory};
use weft_flow::{Flow, FlowError};
use weft_runtime::Runtime;

/// A flow and its plan, as the server runs it.
pub struct ServedFlow {
    pub flow: Flow,
    pub plan: Plan,
}

impl ServedFlow {
    pub fn name(&self) -> &str {
        self.flow.file.name.get_ref().as_str()
    }

    /// The webhook trigger's connection and the events it asks for, if the flow has one.
    pub fn webhook(&self) -> Option<(&str, &[String])> {
        let webhook = self
            .flow
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
            Ok(plan) => served.push(ServedFlow { flow, plan }),
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
