//! Plugins loaded once and shared. Every plan naming the same component (the same bytes) gets
//! the same loaded plugin: its linked instance template, its description and its compiled
//! stream schemas are held once, so a server planning ten thousand flows over a handful of
//! plugins holds a handful of them. A file unchanged since it was read (same size, same
//! modification time) is not read again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use crate::{ConnectorPlugin, LoadError, Plugin, Runtime, TransformPlugin};

/// A loaded plugin, shared by whoever loaded the same bytes.
#[derive(Clone)]
pub enum SharedPlugin {
    Connector(Arc<ConnectorPlugin>),
    Transform(Arc<TransformPlugin>),
}

impl From<Plugin> for SharedPlugin {
    fn from(plugin: Plugin) -> Self {
        match plugin {
            Plugin::Connector(c) => SharedPlugin::Connector(Arc::new(c)),
            Plugin::Transform(t) => SharedPlugin::Transform(Arc::new(t)),
        }
    }
}

/// A file as it was when last read: its size and modification time, and its bytes' digest.
#[derive(Clone, PartialEq, Eq)]
struct Seen {
    len: u64,
    modified: Option<SystemTime>,
    digest: Vec<u8>,
}

#[derive(Default)]
pub(crate) struct Shelf {
    by_digest: Mutex<HashMap<Vec<u8>, SharedPlugin>>,
    files: Mutex<HashMap<PathBuf, Seen>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runtime {
    /// Loads the plugin in `path`, or gives the one loaded before from the same bytes (see
    /// [`Runtime::load`]); a file unchanged since it was last read is not read again.
    pub async fn load_file_shared(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<SharedPlugin, LoadError> {
        let path = path.as_ref();
        let read_error = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let shelf = self.shelf();
        let meta = tokio::fs::metadata(path).await.map_err(read_error)?;
        let (len, modified) = (meta.len(), meta.modified().ok());
        let seen = lock(&shelf.files).get(path).cloned();
        if let Some(seen) = seen.filter(|s| s.len == len && s.modified == modified)
            && let Some(plugin) = lock(&shelf.by_digest).get(&seen.digest)
        {
            return Ok(plugin.clone());
        }
        let wasm = tokio::fs::read(path).await.map_err(read_error)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &wasm)
            .as_ref()
            .to_vec();
        let seen = Seen {
            len: wasm.len() as u64,
            modified,
            digest: digest.clone(),
        };
        let known = lock(&shelf.by_digest).get(&digest).cloned();
        let plugin = match known {
            Some(plugin) => plugin,
            None => {
                let name = path.file_name().map_or_else(
                    || path.display().to_string(),
                    |n| n.to_string_lossy().into_owned(),
                );
                let plugin = SharedPlugin::from(self.load(&name, wasm).await?);
                lock(&shelf.by_digest).insert(digest, plugin.clone());
                plugin
            }
        };
        lock(&shelf.files).insert(path.to_owned(), seen);
        Ok(plugin)
    }
}
