//! A flow file as written: every table refuses unknown keys, every name is validated where it
//! is read, and every value a later check may complain about keeps its position.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::names::{ConnectionName, Cron, FlowName, Interval, StepId, VarName};

/// A whole flow file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowFile {
    #[schemars(with = "FlowName")]
    pub name: Spanned<FlowName>,
    #[serde(default)]
    pub description: Option<String>,
    /// Job chain: this flow runs after each of these flows succeeded.
    #[serde(default)]
    #[schemars(with = "Vec<FlowName>")]
    pub after: Vec<Spanned<FlowName>>,
    /// When the flow runs; by hand only when absent.
    #[serde(default)]
    #[schemars(with = "Option<Trigger>")]
    pub trigger: Option<Spanned<Trigger>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<VarName, Variable>")]
    pub variables: BTreeMap<Spanned<VarName>, Spanned<Variable>>,
    /// Per-environment values (`weft run FLOW --env staging`): variables and connections only,
    /// so staging and production run the same steps.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Environment>")]
    pub environments: BTreeMap<Spanned<String>, Spanned<Environment>>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<ConnectionName, Connection>")]
    pub connections: BTreeMap<Spanned<ConnectionName>, Spanned<Connection>>,
    /// The steps as written; [`crate::parse`] moves them into [`crate::Flow::steps`] once each
    /// is checked to have one kind.
    #[serde(default)]
    #[schemars(with = "Vec<StepTable>")]
    pub steps: Vec<Spanned<StepTable>>,
}

/// Exactly one of these.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub manual: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Option<Schedule>")]
    pub schedule: Option<Spanned<Schedule>>,
    #[serde(default)]
    #[schemars(with = "Option<WebhookTrigger>")]
    pub webhook: Option<Spanned<WebhookTrigger>>,
    /// Like `schedule`, for sources polled for changes.
    #[serde(default)]
    #[schemars(with = "Option<Schedule>")]
    pub poll: Option<Spanned<Schedule>>,
}

/// Exactly one of `every` and `cron`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    #[serde(default)]
    #[schemars(with = "Option<Interval>")]
    pub every: Option<Spanned<Interval>>,
    #[serde(default)]
    #[schemars(with = "Option<Cron>")]
    pub cron: Option<Spanned<Cron>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookTrigger {
    /// The connection whose plugin verifies deliveries.
    #[schemars(with = "ConnectionName")]
    pub connection: Spanned<ConnectionName>,
    /// Vendor event names to subscribe to; all when empty.
    #[serde(default)]
    pub events: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VarType {
    String,
    Number,
    Bool,
    Json,
    /// A `secret:NAME` or `env:NAME` reference; the value is never shown.
    Secret,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    #[serde(rename = "type")]
    pub kind: VarType,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    #[serde(default)]
    #[schemars(with = "BTreeMap<VarName, serde_json::Value>")]
    pub variables: BTreeMap<Spanned<VarName>, Spanned<toml::Value>>,
    /// Replaces the named connections' `config`, `auth` and `egress` where given.
    #[serde(default)]
    #[schemars(with = "BTreeMap<ConnectionName, ConnectionOverride>")]
    pub connections: BTreeMap<Spanned<ConnectionName>, Spanned<ConnectionOverride>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// A plugin name (`zendesk`) or a path to a component (`plugins/x.wasm`).
    #[schemars(with = "String")]
    pub plugin: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<Spanned<toml::Table>>,
    /// `{ kind = "...", ... }`; secret values as `secret:NAME` or `env:NAME`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub auth: Option<Spanned<toml::Table>>,
    /// Hosts allowed beyond those the plugin derives from `config`.
    #[serde(default)]
    #[schemars(with = "Vec<EgressRule>")]
    pub egress: Vec<Spanned<EgressRule>>,
    /// The secret webhook deliveries are signed with (`secret:NAME` or `env:NAME`), for
    /// connectors that verify signatures.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub webhook_secret: Option<Spanned<String>>,
    /// Requests per period for this connection's credential, shared by every flow using the
    /// same credential; overrides the connector's documented default.
    #[serde(default)]
    #[schemars(with = "Option<Rate>")]
    pub rate: Option<Spanned<Rate>>,
}

/// `{ requests = 100, per = "10s" }`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub requests: u32,
    pub per: Interval,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionOverride {
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<Spanned<toml::Table>>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub auth: Option<Spanned<toml::Table>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<EgressRule>>")]
    pub egress: Option<Vec<Spanned<EgressRule>>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    #[schemars(with = "String")]
    pub host: Spanned<String>,
    #[serde(default)]
    pub allow_http: bool,
    /// The host may resolve to loopback or private addresses (local emulators).
    #[serde(default)]
    pub allow_private: bool,
    /// Requests to the host carry the connection's credential (the default); `false` for a
    /// host that must not receive it (a storage host reached through signed URLs).
    #[serde(default = "default_true")]
    pub credential: bool,
}

fn default_true() -> bool {
    true
}

/// One `[[steps]]` table as written: exactly one of `read`, `transform`, `write`, `condition`
/// and `for_each` is meant to be given. Checking turns it into a [`Step`](crate::Step), whose
/// kind is one value of [`StepKind`](crate::StepKind).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Step")]
pub struct StepTable {
    #[schemars(with = "StepId")]
    pub id: Spanned<StepId>,
    #[serde(default)]
    #[schemars(with = "Option<ReadStep>")]
    pub read: Option<Spanned<ReadStep>>,
    #[serde(default)]
    #[schemars(with = "Option<TransformStep>")]
    pub transform: Option<Spanned<TransformStep>>,
    #[serde(default)]
    #[schemars(with = "Option<WriteStep>")]
    pub write: Option<Spanned<WriteStep>>,
    #[serde(default)]
    #[schemars(with = "Option<ConditionStep>")]
    pub condition: Option<Spanned<ConditionStep>>,
    #[serde(default)]
    #[schemars(with = "Option<ForEachStep>")]
    pub for_each: Option<Spanned<ForEachStep>>,
    /// The transform's configuration, as its plugin's config schema describes.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<Spanned<toml::Table>>,
    /// Run only after these steps ended so (Power Automate's runAfter); by default a step runs
    /// after its inputs succeeded.
    #[serde(default)]
    #[schemars(with = "BTreeMap<StepId, RunAfter>")]
    pub run_after: BTreeMap<Spanned<StepId>, Spanned<RunAfter>>,
    /// How long one call of the step (a page read, a batch transformed or written, retries
    /// included) may take before the step fails.
    #[serde(default)]
    #[schemars(with = "Option<Interval>")]
    pub timeout: Option<Spanned<Interval>>,
}

/// Which records of its input a step takes: of a condition, those the condition holds for
/// (`then`, the default) or the others (`else`); of a transform, the records it rejected
/// (`rejected`), each with `_rejected = { reason, field }`; of a write, the records the upstream
/// accepted (`written`), each with `_written = { id, status }`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Branch {
    #[default]
    Then,
    Else,
    Rejected,
    Written,
}

/// Routes records: those `when` holds for go to the steps reading this one, the others to the
/// steps reading it with `branch = "else"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionStep {
    #[schemars(with = "StepId")]
    pub input: Spanned<StepId>,
    /// A CEL condition over `record`, e.g. `record.StageName == 'Waiting'`.
    #[schemars(with = "String")]
    pub when: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<Branch>")]
    pub branch: Option<Spanned<Branch>>,
}

/// For each input record, reads a connector stream with `options` filled in from the record
/// (`"${record.FIELD}"`), several reads at once; the step's records are what those reads return.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForEachStep {
    #[schemars(with = "StepId")]
    pub input: Spanned<StepId>,
    #[schemars(with = "ConnectionName")]
    pub connection: Spanned<ConnectionName>,
    #[schemars(with = "String")]
    pub stream: Spanned<String>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub options: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Reads in flight at once (default 4, at most 32).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<u32>>,
    /// Puts the input record into each record read, under this field.
    #[serde(default)]
    pub parent_field: Option<String>,
    #[serde(default)]
    #[schemars(with = "Option<Branch>")]
    pub branch: Option<Spanned<Branch>>,
}

/// At most this many reads of a `for_each` step are in flight at once.
pub const FOR_EACH_MAX_CONCURRENCY: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunAfter {
    Succeeded,
    Failed,
    /// Either way.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    Full,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
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

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadStep {
    #[schemars(with = "ConnectionName")]
    pub connection: Spanned<ConnectionName>,
    #[schemars(with = "String")]
    pub stream: Spanned<String>,
    #[serde(default = "full")]
    pub sync: SyncMode,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub options: Option<Spanned<toml::Table>>,
    #[serde(default)]
    pub page_size: Option<u32>,
}

fn full() -> SyncMode {
    SyncMode::Full
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    #[schemars(with = "String")]
    pub plugin: Spanned<String>,
    #[schemars(with = "StepId")]
    pub input: Spanned<StepId>,
    /// A second input used as a lookup table.
    #[serde(default)]
    #[schemars(with = "Option<StepId>")]
    pub lookup: Option<Spanned<StepId>>,
    #[serde(default)]
    #[schemars(with = "Option<Branch>")]
    pub branch: Option<Spanned<Branch>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteStep {
    #[schemars(with = "ConnectionName")]
    pub connection: Spanned<ConnectionName>,
    #[schemars(with = "String")]
    pub stream: Spanned<String>,
    #[schemars(with = "StepId")]
    pub input: Spanned<StepId>,
    #[schemars(with = "WriteMode")]
    pub mode: Spanned<WriteMode>,
    /// Fields matching records for `upsert`, `update` and `delete`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub key: Vec<Spanned<String>>,
    #[serde(default)]
    pub batch_size: Option<u32>,
    #[serde(default)]
    #[schemars(with = "Option<Branch>")]
    pub branch: Option<Spanned<Branch>>,
}
