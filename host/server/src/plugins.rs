//! A tenant's own plugins beside the server's shared ones. Uploaded plugins live in the store
//! (so every process sharing it has them); to be loaded they are written once, by digest, to a
//! cache directory, and a tenant's flows are planned with its own plugins found before the
//! shared ones of the same name. Versions live side by side; a flow takes the highest, or the
//! one it pins (`NAME@1.2`).

use std::path::{Path, PathBuf};

use weft_engine::PluginDirectory;
use weft_store::Store;

/// Where a server finds its tenants' plugins.
#[derive(Debug, Clone)]
pub struct TenantPlugins {
    store: Store,
    cache: PathBuf,
}

impl TenantPlugins {
    /// Tenants' plugins from `store`, written to `cache` to be loaded.
    pub fn new(store: Store, cache: impl Into<PathBuf>) -> Self {
        TenantPlugins {
            store,
            cache: cache.into(),
        }
    }

    /// The plugins `tenant`'s flows are planned with: `shared`, with the tenant's own found
    /// first.
    pub async fn directory(
        &self,
        shared: &PluginDirectory,
        tenant: &str,
    ) -> Result<PluginDirectory, String> {
        let own = self
            .store
            .plugin_list(tenant)
            .await
            .map_err(|e| e.to_string())?;
        let mut directory = shared.clone();
        for plugin in own {
            let path = self.cache.join(format!("{}.wasm", plugin.digest));
            if !path.is_file() {
                let wasm = self
                    .store
                    .plugin_wasm(tenant, &plugin.digest)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("plugin `{}` was deleted meanwhile", plugin.name))?;
                write(&self.cache, &path, &wasm)
                    .map_err(|e| format!("caching plugin `{}`: {e}", plugin.name))?;
            }
            directory = directory.with_own(plugin.name, &plugin.version, path);
        }
        Ok(directory)
    }
}

/// Writes `bytes` to `path` in `dir` whole or not at all (a temporary file renamed).
fn write(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, path)
}
