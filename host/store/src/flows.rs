//! Flows deployed to a server through its API, kept as their source, and requests to run one
//! now. Runs, cursors and error logs of any flow are in `runs`.

use std::time::SystemTime;

use crate::dialect::{bind, execute, on_database};
use crate::{Store, StoreError, TenantStatus, millis, millis_to_time, now_millis};

/// A deployed flow as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedFlow {
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its name, as its file says.
    pub name: String,
    /// The flow file's text, as deployed.
    pub source: String,
    /// Values of the variables it declares, as a JSON object of strings.
    pub variables: String,
    /// A digest of the source and variables: a server re-plans the flow when it changes.
    pub digest: String,
    /// Whether it is served (a disabled flow keeps its history and cursors).
    pub enabled: bool,
    /// When it was last deployed.
    pub deployed_at: SystemTime,
    /// The id of its webhook endpoint (`/hooks/{endpoint}`), made at its first deploy and kept
    /// across deploys, so that what a vendor was given stays right.
    pub endpoint: Option<String>,
}

/// One deployed flow's version, as a server compares what it serves with the store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowVersion {
    /// The tenant it belongs to.
    pub tenant: String,
    /// Its name.
    pub name: String,
    /// Its [`DeployedFlow::digest`].
    pub digest: String,
}

/// A request to run a flow now, from the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The tenant the flow belongs to.
    pub tenant: String,
    /// The flow to run.
    pub flow: String,
    /// The run whose failed records to retry, for a retry; `None` for a whole run.
    pub retry_of: Option<String>,
    /// Values of the flow's variables for this run, over those it was deployed with, as a
    /// JSON object of strings (`{}`: none).
    pub variables: String,
    /// When it was (last) asked for.
    pub requested_at: SystemTime,
}

const FLOW_COLUMNS: &str =
    "tenant, name, source, variables, digest, enabled, deployed_at, endpoint";

type FlowRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
);

fn flow_record(row: FlowRow) -> DeployedFlow {
    let (tenant, name, source, variables, digest, enabled, deployed_at, endpoint) = row;
    DeployedFlow {
        tenant,
        name,
        source,
        variables,
        digest,
        enabled: enabled != 0,
        deployed_at: millis_to_time(deployed_at),
        endpoint,
    }
}

/// Counts one change to what servers serve (a flow deployed, enabled, disabled or deleted, a
/// tenant suspended, resumed or deleted): in the same transaction as the change, or after it.
pub(crate) const SERVING_CHANGED: &str =
    "UPDATE serving_changes SET generation = generation + 1 WHERE id = 1";

impl Store {
    /// How many changes to what servers serve were made: a server reads the deployed flows
    /// again only when this moved since it last did. One row.
    pub async fn serving_generation(&self) -> Result<i64, StoreError> {
        on_database!(self, "read the serving generation", |pool| {
            sqlx::query_scalar("SELECT generation FROM serving_changes WHERE id = 1")
                .fetch_one(pool)
                .await
        })
    }

    /// Deploys a flow: stores its source (replacing an earlier deploy of the same name, whose
    /// enabled or disabled state and webhook endpoint it keeps; `endpoint` is the new flow's).
    /// Whether it is new.
    pub async fn flow_deploy(
        &self,
        tenant: &str,
        name: &str,
        source: &str,
        variables: &str,
        digest: &str,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        on_database!(self, format!("deploy flow {name:?}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            let existing: Option<(String,)> =
                sqlx::query_as("SELECT name FROM deployed_flows WHERE tenant = $1 AND name = $2")
                    .bind(tenant)
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let sql = "INSERT INTO deployed_flows
                           (tenant, name, source, variables, digest, enabled, deployed_at, endpoint)
                       VALUES ($1, $2, $3, $4, $5, 1, $6, $7)
                       ON CONFLICT (tenant, name) DO UPDATE SET source = excluded.source,
                           variables = excluded.variables, digest = excluded.digest,
                           deployed_at = excluded.deployed_at,
                           endpoint = COALESCE(deployed_flows.endpoint, excluded.endpoint)";
            let now = now_millis();
            execute!(
                &mut *tx, sql, tenant, name, source, variables, digest, now, endpoint
            )?;
            execute!(&mut *tx, SERVING_CHANGED)?;
            tx.commit().await?;
            Ok(existing.is_none())
        })
    }

    /// The deployed flow `name` of `tenant`.
    pub async fn flow_deployed(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<Option<DeployedFlow>, StoreError> {
        let sql =
            format!("SELECT {FLOW_COLUMNS} FROM deployed_flows WHERE tenant = $1 AND name = $2");
        let sql = sql.as_str();
        let row: Option<FlowRow> = on_database!(self, format!("read flow {name:?}"), |pool| {
            bind!(sqlx::query_as(sql), tenant, name)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(flow_record))
    }

    /// The tenant's deployed flows, by name.
    pub async fn flows_deployed(&self, tenant: &str) -> Result<Vec<DeployedFlow>, StoreError> {
        let sql =
            format!("SELECT {FLOW_COLUMNS} FROM deployed_flows WHERE tenant = $1 ORDER BY name");
        let sql = sql.as_str();
        let rows: Vec<FlowRow> = on_database!(self, "list deployed flows", |pool| {
            sqlx::query_as(sql).bind(tenant).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(flow_record).collect())
    }

    /// The versions of every flow a server should serve: enabled flows of active tenants, in
    /// tenant and name order. One query, whatever the number of flows.
    pub async fn flows_served(&self) -> Result<Vec<FlowVersion>, StoreError> {
        let active = TenantStatus::Active.as_str();
        let rows: Vec<(String, String, String)> =
            on_database!(self, "list the flows to serve", |pool| {
                let sql = "SELECT f.tenant, f.name, f.digest FROM deployed_flows f
                           JOIN tenants t ON t.name = f.tenant
                           WHERE f.enabled = 1 AND t.status = $1 ORDER BY f.tenant, f.name";
                sqlx::query_as(sql).bind(active).fetch_all(pool).await
            })?;
        Ok(rows
            .into_iter()
            .map(|(tenant, name, digest)| FlowVersion {
                tenant,
                name,
                digest,
            })
            .collect())
    }

    /// Enables or disables a deployed flow; false if there is no such flow.
    pub async fn flow_set_enabled(
        &self,
        tenant: &str,
        name: &str,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let enabled = i64::from(enabled);
        let changed = on_database!(self, format!("enable or disable flow {name:?}"), |pool| {
            let sql = "UPDATE deployed_flows SET enabled = $1 WHERE tenant = $2 AND name = $3";
            let changed = execute!(pool, sql, enabled, tenant, name)?;
            execute!(pool, SERVING_CHANGED)?;
            Ok(changed)
        })?;
        Ok(changed == 1)
    }

    /// Removes a deployed flow with its cursors and its pending run request (a flow deployed
    /// again under the name starts from scratch); its runs stay in the history. False if there
    /// was no such flow.
    pub async fn flow_undeploy(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let begin_write = self.pool.dialect().begin_write;
        on_database!(self, format!("delete flow {name:?}"), |pool| {
            let mut tx = pool.begin_with(begin_write).await?;
            for table in ["cursors", "run_requests"] {
                let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND flow = $2");
                execute!(&mut *tx, &sql, tenant, name)?;
            }
            let sql = "DELETE FROM deployed_flows WHERE tenant = $1 AND name = $2";
            let deleted = execute!(&mut *tx, sql, tenant, name)?;
            execute!(&mut *tx, SERVING_CHANGED)?;
            tx.commit().await?;
            Ok(deleted == 1)
        })
    }
}

/// Requests to run a flow now, or to retry a run's failed records.
impl Store {
    /// Asks for a run of `flow` as soon as a server can: a whole run (with `variables`, a JSON
    /// object of strings, over those it was deployed with), or a retry of the records run
    /// `retry_of` logged as failed. A like request already waiting becomes this one: one run
    /// answers both, and a request made while a run for an earlier one is under way outlives
    /// that run ([`Store::run_request_done`] drops only what the run answered).
    pub async fn run_request(
        &self,
        tenant: &str,
        flow: &str,
        retry_of: Option<&str>,
        variables: &str,
    ) -> Result<SystemTime, StoreError> {
        let now = now_millis();
        let retry_of = retry_of.unwrap_or("");
        on_database!(self, format!("request a run of flow {flow:?}"), |pool| {
            let sql = "INSERT INTO run_requests (tenant, flow, retry_of, variables, requested_at)
                       VALUES ($1, $2, $3, $4, $5)
                       ON CONFLICT (tenant, flow, retry_of, variables)
                       DO UPDATE SET requested_at = excluded.requested_at";
            execute!(pool, sql, tenant, flow, retry_of, variables, now)
        })?;
        Ok(millis_to_time(now))
    }

    /// Every waiting request, oldest first. One query, whatever the number of flows.
    pub async fn run_requests(&self) -> Result<Vec<RunRequest>, StoreError> {
        let rows: Vec<(String, String, String, String, i64)> =
            on_database!(self, "list run requests", |pool| {
                let sql = "SELECT tenant, flow, retry_of, variables, requested_at FROM run_requests
                           ORDER BY requested_at, tenant, flow, retry_of, variables";
                sqlx::query_as(sql).fetch_all(pool).await
            })?;
        Ok(rows
            .into_iter()
            .map(
                |(tenant, flow, retry_of, variables, requested_at)| RunRequest {
                    tenant,
                    flow,
                    retry_of: Some(retry_of).filter(|r| !r.is_empty()),
                    variables,
                    requested_at: millis_to_time(requested_at),
                },
            )
            .collect())
    }

    /// Drops `request` once a run answered it (a later like request stays).
    pub async fn run_request_done(&self, request: &RunRequest) -> Result<(), StoreError> {
        let at = millis(request.requested_at);
        let retry_of = request.retry_of.as_deref().unwrap_or("");
        on_database!(self, "drop a run request", |pool| {
            let sql = "DELETE FROM run_requests
                       WHERE tenant = $1 AND flow = $2 AND retry_of = $3 AND variables = $4
                         AND requested_at <= $5";
            let r = request;
            execute!(pool, sql, &r.tenant, &r.flow, retry_of, &r.variables, at)
        })?;
        Ok(())
    }
}
