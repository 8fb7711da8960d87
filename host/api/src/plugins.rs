//! A tenant's own plugins: uploaded as WebAssembly components, inspected at upload (a weft
//! plugin of a contract this server speaks, within the size limit, describing itself with a
//! name), kept in the store by name, found by the tenant's flows before the server's shared
//! plugins of the same name, and by no other tenant's.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weft_server::Quota;
use weft_store::TenantPlugin;

use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Path;
use crate::{Api, time};

/// The largest plugin taken, in bytes.
pub const MAX_PLUGIN: usize = 16 * 1024 * 1024;

pub(crate) fn routes() -> OpenApiRouter<Arc<Api>> {
    OpenApiRouter::new()
        .routes(routes!(upload, list))
        .routes(routes!(delete))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_PLUGIN))
}

/// A plugin of the tenant's.
#[derive(Serialize, ToSchema)]
pub struct PluginInfo {
    /// The name its `describe` gives: flows name it so.
    pub name: String,
    pub version: String,
    /// `connector` or `transform`.
    pub kind: String,
    /// The SHA-256 of the component, in hex.
    pub digest: String,
    /// Its size in bytes.
    pub size: u64,
    pub uploaded_at: String,
}

impl From<TenantPlugin> for PluginInfo {
    fn from(p: TenantPlugin) -> Self {
        PluginInfo {
            name: p.name,
            version: p.version,
            kind: p.kind,
            digest: p.digest,
            size: p.size,
            uploaded_at: time(p.uploaded_at),
        }
    }
}

/// Uploads a plugin (the component's bytes as the body, of any content type, e.g.
/// `application/wasm` or `application/octet-stream`): inspected first
/// (a WebAssembly component of a `weft:plugin` contract this server speaks, at most 16 MiB),
/// then kept under the name and version its `describe` gives, beside the tenant's other
/// versions of that name (replacing the same version). The tenant's flows find it before the
/// server's shared plugin of the same name: `NAME` takes the highest version, `NAME@1.2` the
/// highest 1.2.x, `NAME@1.2.3` exactly that one.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "plugins", security(("token" = [])),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Kept, new", body = PluginInfo),
        (status = 200, description = "Kept over the same version of the plugin", body = PluginInfo),
        (status = 400, description = "Not a weft plugin, or over the size limit", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Over the tenant's quota plugin_bytes", body = ErrorBody),
    ))]
async fn upload(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, axum::Json<PluginInfo>), ApiError> {
    let wasm = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "the plugin could not be read ({}); a plugin is at most {MAX_PLUGIN} bytes",
            e.body_text()
        ))
    })?;
    let quotas = api.quotas.of(&api.store, &tenant).await?;
    if let Some(limit) = quotas.get(Quota::PluginBytes)
        && wasm.len() as u64 > limit
    {
        return Err(ApiError::Conflict(format!(
            "the plugin is {} bytes, over the tenant's quota plugin_bytes of {limit}: make it smaller (a release build, stripped), or ask the operator for more",
            wasm.len()
        )));
    }
    let plugin = api
        .runtime
        .load("upload.wasm", wasm.to_vec())
        .await
        .map_err(|e| ApiError::BadRequest(format!("not a weft plugin: {e}")))?;
    let (name, version, kind) = (plugin.name(), plugin.version(), plugin.kind());
    if !weft_engine::registry::valid_plugin_name(name) {
        return Err(ApiError::BadRequest(format!(
            "the plugin calls itself `{name}`: a plugin's name is 1 to 64 characters from a-z, 0-9, '-' and '_'"
        )));
    }
    if !weft_engine::registry::valid_plugin_version(version) {
        return Err(ApiError::BadRequest(format!(
            "the plugin gives its version as `{version}`: a plugin's version is a semantic version such as 1.2.0"
        )));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &wasm);
    let described = TenantPlugin {
        name: name.to_owned(),
        version: version.to_owned(),
        kind: kind.to_string(),
        digest: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        size: wasm.len() as u64,
        uploaded_at: std::time::SystemTime::now(),
    };
    let existing = api.store.plugin_list(&tenant).await?;
    let new = !existing
        .iter()
        .any(|p| p.name == described.name && p.version == described.version);
    api.store.plugin_put(&tenant, &described, &wasm).await?;
    api.changed();
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(described.into())))
}

/// The tenant's own plugins (the server's shared ones are not listed).
#[utoipa::path(get, path = "/api/v1/plugins", tag = "plugins", security(("token" = [])),
    responses(
        (status = 200, body = [PluginInfo]),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ))]
async fn list(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
) -> Result<axum::Json<Vec<PluginInfo>>, ApiError> {
    let plugins = api.store.plugin_list(&tenant).await?;
    Ok(axum::Json(
        plugins.into_iter().map(PluginInfo::from).collect(),
    ))
}

/// Deletes one of the tenant's plugins: every version (`NAME`) or one (`NAME@VERSION`). Its
/// flows that name it no longer plan unless another version takes the name (they are left out
/// until deployed again, or until a plugin of that name is uploaded again).
#[utoipa::path(delete, path = "/api/v1/plugins/{name}", tag = "plugins", security(("token" = [])),
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ))]
async fn delete(
    Tenant(tenant): Tenant,
    State(api): State<Arc<Api>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (base, version) = match name.split_once('@') {
        Some((base, version)) => (base, Some(version)),
        None => (name.as_str(), None),
    };
    if api.store.plugin_delete(&tenant, base, version).await? {
        api.changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no plugin `{name}`")))
    }
}
