//! Compiled components kept on disk, so a restart loads plugins in milliseconds instead of
//! compiling them again.
//!
//! An entry is named by the SHA-256 of the component's bytes and a hash of everything that
//! makes compiled code incompatible (wasmtime's version and the engine's settings). A stale or
//! corrupt entry is ignored and replaced.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::LoadError;

/// Where a component came from on this load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Compiled now (and stored, when a cache directory is configured).
    Compiled,
    /// Loaded from a previous compilation.
    Cached,
}

#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub(crate) fn new(engine: &Engine, dir: impl Into<PathBuf>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ComponentCache {
            dir: dir.into(),
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn entry(&self, wasm: &[u8]) -> PathBuf {
        let digest = ring::digest::digest(&ring::digest::SHA256, wasm);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `wasm`, from the cache when possible.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        name: &str,
        wasm: &[u8],
    ) -> Result<(Component, CacheOutcome), LoadError> {
        let path = self.entry(wasm);
        if path.exists() {
            // SAFETY: the file is one this cache wrote from `Component::serialize` for an
            // engine with the same compatibility hash, in a directory only weft writes to;
            // wasmtime still checks the header and refuses an incompatible artifact.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CacheOutcome::Cached)),
                Err(e) => {
                    tracing::warn!(plugin = name, path = %path.display(), error = %e, "ignoring unusable cached component");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, name, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(plugin = name, error = %e, "could not cache compiled component");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    fn store(&self, path: &Path, component: &Component) -> Result<(), LoadError> {
        let io = |source| LoadError::Cache {
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let bytes = component
            .serialize()
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        // Write then rename, so a concurrent reader never sees half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

pub(crate) fn compile(engine: &Engine, name: &str, wasm: &[u8]) -> Result<Component, LoadError> {
    Component::new(engine, wasm).map_err(|e| LoadError::NotAComponent {
        name: name.to_owned(),
        reason: format!("{e:#}"),
    })
}
