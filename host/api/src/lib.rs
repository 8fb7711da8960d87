//! weft's HTTP API, served by `weft serve` under `/api/v1`.
//!
//! Every route acts for the holder of the bearer token it is called with ([`auth`]): the
//! operator's token makes, suspends and deletes tenants and issues their tokens (`tenants`); a
//! tenant's token reaches only what that tenant owns: its flows (deployed as TOML, checked and
//! planned at deploy exactly as the server will run them, `flows`), its secrets (write-only,
//! `secrets`), its runs and their error logs (`runs`) and its datasets (`datasets`). Anything of
//! another tenant answers as if it did not exist: 404, never 403. Errors are JSON
//! ([`error::ErrorBody`]); a rejected deploy carries the same diagnostics `weft validate` prints,
//! with line and column.
//!
//! The OpenAPI document is generated from the handlers ([`openapi`]) and served at
//! `/api/v1/openapi.json`.

mod auth;
mod connections;
mod datasets;
pub mod error;
mod extract;
mod flows;
mod metrics;
mod plugins;
mod runs;
mod secrets;
mod tenants;
pub mod token;

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::DefaultBodyLimit;
use tokio::sync::Notify;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use weft_capabilities::Secrets;
use weft_engine::PluginDirectory;
use weft_runtime::Runtime;
use weft_server::{Metrics, Quotas, TenantPlugins, TenantPolicy};
use weft_store::Store;

pub use token::{IssuedToken, issue_token};

/// The largest request body the API takes (a flow file, a secret).
pub const MAX_BODY: usize = 1024 * 1024;

/// What the handlers share.
pub struct Api {
    store: Store,
    secrets: Secrets,
    plugins: PluginDirectory,
    /// Tenants' own plugins, found before the shared ones.
    tenant_plugins: TenantPlugins,
    runtime: Runtime,
    policy: TenantPolicy,
    /// Every tenant's quotas, unless the store holds its own.
    quotas: Quotas,
    /// Notified when what a server serves changes: a flow deployed, changed, enabled,
    /// disabled or deleted, a run asked for, a tenant suspended, resumed or deleted.
    changed: Arc<Notify>,
    /// What the server in this process counts (empty without one).
    metrics: Arc<Metrics>,
}

impl Api {
    /// An API over `store`, planning deployed flows with `plugins` and each tenant's own
    /// `tenant_plugins` on `runtime`.
    pub fn new(
        store: Store,
        secrets: Secrets,
        plugins: PluginDirectory,
        tenant_plugins: TenantPlugins,
        runtime: Runtime,
    ) -> Self {
        Api {
            store,
            secrets,
            plugins,
            tenant_plugins,
            runtime,
            policy: TenantPolicy::default(),
            quotas: Quotas::default(),
            changed: Arc::new(Notify::new()),
            metrics: Arc::default(),
        }
    }

    /// Serves `metrics` ([`Server::metrics`](weft_server::Server::metrics)) to the operator at
    /// `GET /api/v1/metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// What deployed flows may do beyond the defaults.
    pub fn with_policy(mut self, policy: TenantPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The quotas of tenants that have none of their own (the server's, `--quota`).
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Notified when what a server serves changes, for
    /// [`Server::with_deployed`](weft_server::Server::with_deployed).
    pub fn changes(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }

    /// The routes, and `GET /api/v1/openapi.json`.
    pub fn router(self) -> axum::Router {
        let (router, document) = routes().split_for_parts();
        let document = Arc::new(document);
        router
            .route(
                "/api/v1/openapi.json",
                axum::routing::get(move || async move { axum::Json(Arc::clone(&document)) }),
            )
            .fallback(|| async { error::ApiError::NotFound("no such route".into()) })
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Arc::new(self))
    }

    fn changed(&self) {
        self.changed.notify_one();
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "The API of a weft server: tenants and metrics (operator token), and each tenant's flows, plugins, secrets, runs and datasets (tenant token). Anything of another tenant answers 404."
    ),
    modifiers(&BearerToken),
    tags(
        (name = "tenants", description = "The operator's: tenants and their API tokens"),
        (name = "flows", description = "Flows deployed as TOML, checked and planned at deploy"),
        (name = "secrets", description = "Write-only credentials flows refer to as `secret:NAME`"),
        (name = "runs", description = "What ran, how it went, the records that failed"),
        (name = "datasets", description = "Records flows keep in weft's datasets"),
        (name = "plugins", description = "The tenant's own plugins, found before the server's shared ones"),
    )
)]
struct Document;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::with_openapi(Document::openapi())
        .merge(tenants::routes())
        .merge(flows::routes())
        .merge(connections::routes())
        .merge(metrics::routes())
        .merge(plugins::routes())
        .merge(secrets::routes())
        .merge(runs::routes())
        .merge(datasets::routes())
}

/// A time as the API writes it: RFC 3339, UTC, milliseconds (nothing before 1970 is written:
/// the formatter cannot, and no run is).
fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t.max(SystemTime::UNIX_EPOCH)).to_string()
}
