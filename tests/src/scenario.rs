//! Running the example flows of `examples/` end to end against a sandbox started for the test.
//!
//! Example flows follow one convention so that the same file runs against the real vendor,
//! `weft sandbox` and a test's sandbox on ephemeral ports:
//! - the top-level connections are the production ones (real hosts, `secret:` references);
//! - `[environments.sandbox.connections.NAME]` points each at the emulator through two variables
//!   per vendor, `{vendor}_url` in its `config` (default `http://127.0.0.1:4101`, the port
//!   `weft sandbox` uses) and `{vendor}_host` in its loopback `egress` (`127.0.0.1:4101`), with
//!   the sandbox's published demo credentials;
//! - so `weft run FLOW --env sandbox` runs against `weft sandbox`, and [`Scenario::run`] sets
//!   the variables for the sandbox it started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_capabilities::{MasterKey, Secret, Secrets};
use weft_engine::{PlanOptions, PluginDirectory, RetryPolicy, RunOptions, RunReport};
use weft_sandbox::{Sandbox, SandboxConfig};
use weft_store::Store;

/// A sandbox, a SQLite store in a temporary directory and the built plugins.
pub struct Scenario {
    pub sandbox: Sandbox,
    pub store: Store,
    pub secrets: Secrets,
    pub dir: tempfile::TempDir,
    pub runtime: weft_runtime::Runtime,
    pub plugins: PluginDirectory,
}

/// An example flow file by its path under `examples/`.
pub fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path)
}

impl Scenario {
    pub async fn start(config: SandboxConfig) -> Scenario {
        let sandbox = Sandbox::start(config).await.expect("sandbox starts");
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open_sqlite(dir.path().join("weft.db"))
            .await
            .expect("store");
        let secrets = Secrets::new(store.clone(), MasterKey::generate("test"));
        let runtime = crate::runtime(|_| {});
        let plugins = PluginDirectory::new([PathBuf::from(crate::WASM_DIR)]);
        Scenario {
            sandbox,
            store,
            secrets,
            dir,
            runtime,
            plugins,
        }
    }

    /// Every record a SOQL query returns from the Salesforce emulator, through its own REST API
    /// (JWT bearer with the sandbox's demo key, following `nextRecordsUrl`), not through weft.
    pub async fn soql(&self, query: &str) -> Vec<serde_json::Value> {
        use serde_json::Value;
        let (bearer, root) = crate::vendor::salesforce_session(&self.sandbox).await;
        let base = self
            .sandbox
            .vendor(weft_sandbox::Vendor::Salesforce)
            .expect("salesforce runs")
            .base_url()
            .to_owned();
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        let mut page: Value = http
            .get(format!("{root}/query"))
            .query(&[("q", query)])
            .bearer_auth(&bearer)
            .send()
            .await
            .expect("the query endpoint answers")
            .json()
            .await
            .expect("JSON");
        loop {
            out.extend(
                page["records"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{query}: {page}"))
                    .iter()
                    .cloned(),
            );
            let Some(next) = page["nextRecordsUrl"]
                .as_str()
                .map(|n| format!("{base}{n}"))
            else {
                return out;
            };
            page = http
                .get(next)
                .bearer_auth(&bearer)
                .send()
                .await
                .expect("the next page")
                .json()
                .await
                .expect("JSON");
        }
    }

    /// Stores a secret the flows refer to as `secret:NAME`.
    pub async fn secret(&self, name: &str, value: &str) {
        self.secrets
            .set("default", name, &Secret::new(value))
            .await
            .expect("secret stored");
    }

    /// Plans and runs the flow at `path` once with this sandbox's variables (those the flow
    /// declares) and `vars` over them; panics with the flow's own diagnostics if it does not plan.
    pub async fn run(
        &self,
        path: &Path,
        environment: Option<&str>,
        vars: &[(&str, &str)],
    ) -> RunReport {
        let flow = weft_flow::load(path).unwrap_or_else(|e| panic!("{e}"));
        let declared: Vec<String> = flow
            .file
            .variables
            .keys()
            .map(|k| k.get_ref().to_string())
            .collect();
        let mut variables: BTreeMap<String, String> = self
            .sandbox
            .flow_variables()
            .into_iter()
            .filter(|(k, _)| declared.contains(k))
            .collect();
        variables.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let options = PlanOptions {
            environment: environment.map(str::to_owned),
            tenant: "default".into(),
            variables,
        };
        let plan = weft_engine::plan_with(&flow, &options, &self.plugins, &self.runtime)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let run = RunOptions {
            environment: environment.map(str::to_owned),
            retry: RetryPolicy {
                attempts: 6,
                base: std::time::Duration::from_millis(20),
                max_wait: std::time::Duration::from_secs(2),
            },
            ..RunOptions::default()
        };
        weft_engine::run(
            &flow,
            &plan,
            &self.store,
            &self.secrets,
            &run,
            &mut |_: &weft_engine::Progress<'_>| {},
        )
        .await
        .expect("the run is carried out")
    }

    /// The records a flow kept in dataset `name`, in key order.
    pub async fn dataset(&self, name: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let rows = self
                .store
                .dataset_page("default", name, after.as_deref(), 500)
                .await
                .expect("dataset page");
            if rows.is_empty() {
                return out;
            }
            after = rows.last().map(|(k, _)| k.clone());
            out.extend(
                rows.into_iter()
                    .map(|(_, r)| serde_json::from_str(&r).expect("dataset records are JSON")),
            );
        }
    }
}

/// The step of a run by id, panicking with the report when it is missing.
pub fn step<'a>(report: &'a RunReport, id: &str) -> &'a weft_store::StepRunRecord {
    report
        .steps
        .iter()
        .find(|s| s.step == id)
        .unwrap_or_else(|| panic!("no step {id} in {report:?}"))
}
