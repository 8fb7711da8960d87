//! A flow file as written: every table refuses unknown keys, every name is validated where it
//! is read, and every value a later check may complain about keeps its position.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::names::{ConnectionName, Cron, FlowName, Interval, StepId, VarName};

/// A whole flow file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    pub name: Spanned<FlowName>,
    #[serde(default)]
    pub description: Option<String>,
    /// Job chain: this flow runs after each of these flows succeeded.
    #[serde(default)]
    pub after: Vec<Spanned<FlowName>>,
    /// When the flow runs; by hand only when absent.
    #[serde(default)]
    pub trigger: Option<Spanned<Trigger>>,
    #[serde(default)]
    pub variables: BTreeMap<Spanned<VarName>, Spanned<Variable>>,
    /// Per-environment values (`weft run FLOW --env staging`): variables and connections only,
    /// so staging and production run the same steps.
    #[serde(default)]
    pub environments: BTreeMap<Spanned<String>, Spanned<Environment>>,
    #[serde(default)]
    pub connections: BTreeMap<Spanned<ConnectionName>, Spanned<Connection>>,
    #[serde(default)]
    pub steps: Vec<Spanned<Step>>,
}

/// Exactly one of these.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub manual: Option<bool>,
    #[serde(default)]
    pub schedule: Option<Spanned<Schedule>>,
    #[serde(default)]
    pub webhook: Option<Spanned<WebhookTrigger>>,
    /// Like `schedule`, for sources polled for changes.
    #[serde(default)]
    pub poll: Option<Spanned<Schedule>>,
}

/// Exactly one of `every` and `cron`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    pub every: Option<Spanned<Interval>>,
    #[serde(default)]
    pub cron: Option<Spanned<Cron>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The connection whose plugin verifies deliveries.
    pub connection: Spanned<ConnectionName>,
    /// Vendor event names to subscribe to; all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    String,
    Number,
    Bool,
    Json,
    /// A `secret:NAME` or `env:NAME` reference; the value is never shown.
    Secret,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(rename = "type")]
    pub kind: VarType,
    #[serde(default)]
    pub default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    #[serde(default)]
    pub variables: BTreeMap<Spanned<VarName>, Spanned<toml::Value>>,
    /// Replaces the named connections' `config`, `auth` and `egress` where given.
    #[serde(default)]
    pub connections: BTreeMap<Spanned<ConnectionName>, Spanned<ConnectionOverride>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// A plugin name (`zendesk`) or a path to a component (`plugins/x.wasm`).
    pub plugin: Spanned<String>,
    #[serde(default)]
    pub config: Option<Spanned<toml::Table>>,
    /// `{ kind = "...", ... }`; secret values as `secret:NAME` or `env:NAME`.
    #[serde(default)]
    pub auth: Option<Spanned<toml::Table>>,
    /// Hosts allowed beyond those the plugin derives from `config`.
    #[serde(default)]
    pub egress: Vec<Spanned<EgressRule>>,
    /// Requests per period for this connection's credential, shared by every flow using the
    /// same credential; overrides the connector's documented default.
    #[serde(default)]
    pub rate: Option<Spanned<Rate>>,
}

/// `{ requests = 100, per = "10s" }`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub requests: u32,
    pub per: Interval,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionOverride {
    #[serde(default)]
    pub config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub auth: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub egress: Option<Vec<Spanned<EgressRule>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    pub host: Spanned<String>,
    #[serde(default)]
    pub allow_http: bool,
    /// The host may resolve to loopback or private addresses (local emulators).
    #[serde(default)]
    pub allow_private: bool,
}

/// One step; exactly one of `read`, `transform` and `write`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: Spanned<StepId>,
    #[serde(default)]
    pub read: Option<Spanned<ReadStep>>,
    #[serde(default)]
    pub transform: Option<Spanned<TransformStep>>,
    #[serde(default)]
    pub write: Option<Spanned<WriteStep>>,
    /// The transform's configuration, as its plugin's config schema describes.
    #[serde(default)]
    pub config: Option<Spanned<toml::Table>>,
    /// Run only after these steps ended so (Power Automate's runAfter); by default a step runs
    /// after its inputs succeeded.
    #[serde(default)]
    pub run_after: BTreeMap<Spanned<StepId>, Spanned<RunAfter>>,
    #[serde(default)]
    pub timeout: Option<Spanned<Interval>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunAfter {
    Succeeded,
    Failed,
    /// Either way.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    Full,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Create,
    Update,
    Upsert,
    Delete,
}

impl WriteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Create => "create",
            WriteMode::Update => "update",
            WriteMode::Upsert => "upsert",
            WriteMode::Delete => "delete",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadStep {
    pub connection: Spanned<ConnectionName>,
    pub stream: Spanned<String>,
    #[serde(default = "full")]
    pub sync: SyncMode,
    #[serde(default)]
    pub options: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub page_size: Option<u32>,
}

fn full() -> SyncMode {
    SyncMode::Full
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    pub plugin: Spanned<String>,
    pub input: Spanned<StepId>,
    /// A second input used as a lookup table.
    #[serde(default)]
    pub lookup: Option<Spanned<StepId>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteStep {
    pub connection: Spanned<ConnectionName>,
    pub stream: Spanned<String>,
    pub input: Spanned<StepId>,
    pub mode: Spanned<WriteMode>,
    /// Fields matching records for `upsert`, `update` and `delete`.
    #[serde(default)]
    pub key: Vec<Spanned<String>>,
    #[serde(default)]
    pub batch_size: Option<u32>,
}
