//! Where plugins named in flow files are found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Directories searched, in order, for the component of a plugin named in a flow. A name
/// `zendesk` matches `zendesk.wasm` or `weft_plugin_zendesk.wasm` (what `cargo build` names a
/// first-party plugin); a name ending in `.wasm` is a path, relative to the flow file.
#[derive(Debug, Clone, Default)]
pub struct PluginDirectory {
    dirs: Vec<PathBuf>,
    /// Plugins known by name, found before the directories (a tenant's own uploads).
    named: BTreeMap<String, PathBuf>,
}

impl PluginDirectory {
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        PluginDirectory {
            dirs: dirs.into_iter().collect(),
            named: BTreeMap::new(),
        }
    }

    /// This directory with plugin `name` in `path`, found before any of the directories'.
    pub fn with_named(mut self, name: impl Into<String>, path: PathBuf) -> Self {
        self.named.insert(name.into(), path);
        self
    }

    /// The component for `name`, or a message saying where weft looked and what it found.
    pub fn find(&self, name: &str, flow_dir: &Path) -> Result<PathBuf, String> {
        if let Some(path) = self.named.get(name) {
            return Ok(path.clone());
        }
        if name.ends_with(".wasm") {
            let path = flow_dir.join(name);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("plugin file {} does not exist", path.display()))
            };
        }
        let file_names = [
            format!("{name}.wasm"),
            format!("weft_plugin_{}.wasm", name.replace('-', "_")),
        ];
        for dir in &self.dirs {
            for file in &file_names {
                let path = dir.join(file);
                if path.is_file() {
                    return Ok(path);
                }
            }
        }
        let available = self.available();
        Err(format!(
            "no plugin `{name}` in {}; available: {}",
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            if available.is_empty() {
                "none".to_owned()
            } else {
                available.join(", ")
            }
        ))
    }

    /// Plugin names found in the directories.
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let stem = file.strip_suffix(".wasm")?;
                Some(
                    stem.strip_prefix("weft_plugin_")
                        .map_or_else(|| stem.to_owned(), |s| s.replace('_', "-")),
                )
            })
            .collect();
        names.extend(self.named.keys().cloned());
        names.sort();
        names.dedup();
        names
    }
}
