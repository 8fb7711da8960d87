//! Where plugins named in flow files are found, and what a plugin may be named.
//!
//! A plugin installed with `weft plugin install` is kept as `NAME@VERSION.wasm`, named by its
//! own `describe`: several versions of one plugin live side by side, a flow names the plugin
//! (`bookshelf`, the highest version) or pins one (`bookshelf@1.2`: the highest 1.2.x).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Whether `name` is one a flow can name a plugin by: 1 to 64 of a-z, 0-9, `-` and `_`.
pub fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Whether `version` can be part of an installed plugin's file name: a semantic version
/// (`1.2.0`, `2.0.0-beta.1`), at most 64 characters.
pub fn valid_plugin_version(version: &str) -> bool {
    version.len() <= 64 && semver::Version::parse(version).is_ok()
}

/// The file an installed plugin is kept in, inside a plugin directory.
pub fn installed_file_name(name: &str, version: &str) -> String {
    format!("{name}@{version}.wasm")
}

/// Whether `version` is what `pin` asks for: a whole version is that version; one or two
/// numbers are the releases that start so (`1.2` takes `1.2.0` and `1.2.7`, not `1.20.0`);
/// no pin takes any release. A pre-release is taken only when pinned whole.
fn pinned(version: &semver::Version, pin: Option<&str>) -> bool {
    let Some(pin) = pin else {
        return version.pre.is_empty();
    };
    if let Ok(exact) = semver::Version::parse(pin) {
        return &exact == version;
    }
    let wanted: Vec<&str> = pin.split('.').collect();
    wanted.len() < 3
        && version.pre.is_empty()
        && wanted
            .iter()
            .zip([version.major, version.minor])
            .all(|(w, n)| w.parse::<u64>() == Ok(n))
}

/// Directories searched, in order, for the component of a plugin named in a flow: in each,
/// first the installed versions of the name (`NAME@VERSION.wasm`, the highest that the pin
/// allows), then, without a pin, `NAME.wasm` or `weft_plugin_NAME.wasm` (what `cargo build`
/// names a first-party plugin). A name ending in `.wasm` is a path, relative to the flow file.
#[derive(Debug, Clone, Default)]
pub struct PluginDirectory {
    dirs: Vec<PathBuf>,
    /// Plugins known by name and version, found before the directories (a tenant's own
    /// uploads): the highest version a pin allows, as among installed files. A version that is
    /// not a semantic version is found only without a pin.
    own: BTreeMap<String, Vec<(Option<semver::Version>, PathBuf)>>,
}

impl PluginDirectory {
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Self {
        PluginDirectory {
            dirs: dirs.into_iter().collect(),
            own: BTreeMap::new(),
        }
    }

    /// The directories searched, in order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// This directory with version `version` of plugin `name` in `path`, found before any of
    /// the directories' when a flow's name (and pin, if any) takes it.
    pub fn with_own(mut self, name: impl Into<String>, version: &str, path: PathBuf) -> Self {
        self.own
            .entry(name.into())
            .or_default()
            .push((semver::Version::parse(version).ok(), path));
        self
    }

    /// The component for `name`, or a message saying where weft looked and what it found.
    pub fn find(&self, name: &str, flow_dir: &Path) -> Result<PathBuf, String> {
        if name.ends_with(".wasm") {
            let path = flow_dir.join(name);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!("plugin file {} does not exist", path.display()))
            };
        }
        let (base, pin) = match name.split_once('@') {
            Some((base, pin)) => (base, Some(pin)),
            None => (name, None),
        };
        let own = self.own.get(base).into_iter().flatten();
        let chosen = own
            .filter(|(version, _)| match version {
                Some(version) => pinned(version, pin),
                None => pin.is_none(),
            })
            .max_by(|(a, _), (b, _)| a.cmp(b));
        if let Some((_, path)) = chosen {
            return Ok(path.clone());
        }
        for dir in &self.dirs {
            if let Some(path) = highest_installed(dir, base, pin) {
                return Ok(path);
            }
            if pin.is_some() {
                continue;
            }
            let file_names = [
                format!("{base}.wasm"),
                format!("weft_plugin_{}.wasm", base.replace('-', "_")),
            ];
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
                if stem.contains('@') {
                    // Installed: named and versioned already.
                    return Some(stem.to_owned());
                }
                Some(
                    stem.strip_prefix("weft_plugin_")
                        .map_or_else(|| stem.to_owned(), |s| s.replace('_', "-")),
                )
            })
            .collect();
        for (name, versions) in &self.own {
            names.extend(versions.iter().map(|(version, _)| match version {
                Some(version) => format!("{name}@{version}"),
                None => name.clone(),
            }));
        }
        names.sort();
        names.dedup();
        names
    }
}

/// The installed version of `name` in `dir` that `pin` allows, the highest.
fn highest_installed(dir: &Path, name: &str, pin: Option<&str>) -> Option<PathBuf> {
    let prefix = format!("{name}@");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let version = file.strip_prefix(&prefix)?.strip_suffix(".wasm")?;
            let version = semver::Version::parse(version).ok()?;
            pinned(&version, pin).then(|| (version, entry.path()))
        })
        .filter(|(_, path)| path.is_file())
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(files: &[&str]) -> (tempfile::TempDir, PluginDirectory) {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        let plugins = PluginDirectory::new([dir.path().to_owned()]);
        (dir, plugins)
    }

    fn found(plugins: &PluginDirectory, name: &str) -> Result<String, String> {
        plugins
            .find(name, Path::new("."))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
    }

    #[test]
    fn a_name_finds_its_highest_installed_version_and_a_pin_the_highest_it_allows() {
        let (_dir, plugins) = directory(&[
            "bookshelf@1.2.0.wasm",
            "bookshelf@1.2.10.wasm",
            "bookshelf@1.20.0.wasm",
            "bookshelf@2.0.0-beta.1.wasm",
            "bookshelf@not-a-version.wasm",
            "bookshelves@9.0.0.wasm",
        ]);
        assert_eq!(
            found(&plugins, "bookshelf").unwrap(),
            "bookshelf@1.20.0.wasm"
        );
        assert!(
            found(&plugins, "bookshelf@2").is_err(),
            "a pre-release only when pinned whole"
        );
        assert_eq!(
            found(&plugins, "bookshelf@1").unwrap(),
            "bookshelf@1.20.0.wasm"
        );
        assert_eq!(
            found(&plugins, "bookshelf@1.2").unwrap(),
            "bookshelf@1.2.10.wasm"
        );
        assert_eq!(
            found(&plugins, "bookshelf@1.2.0").unwrap(),
            "bookshelf@1.2.0.wasm"
        );
        assert_eq!(
            found(&plugins, "bookshelf@2.0.0-beta.1").unwrap(),
            "bookshelf@2.0.0-beta.1.wasm"
        );
        let missing = found(&plugins, "bookshelf@1.3").unwrap_err();
        assert!(
            missing.starts_with("no plugin `bookshelf@1.3` in "),
            "{missing}"
        );
        assert!(
            missing.contains("bookshelf@1.2.0, bookshelf@1.2.10"),
            "{missing}"
        );
    }

    #[test]
    fn a_pin_never_falls_back_to_an_unversioned_file_but_a_bare_name_does() {
        let (_dir, plugins) = directory(&["weft_plugin_zendesk.wasm", "acme.wasm"]);
        assert_eq!(
            found(&plugins, "zendesk").unwrap(),
            "weft_plugin_zendesk.wasm"
        );
        assert_eq!(found(&plugins, "acme").unwrap(), "acme.wasm");
        assert!(found(&plugins, "zendesk@1.0").is_err());
    }

    #[test]
    fn earlier_directories_win_whatever_the_versions_in_later_ones() {
        let (first, _) = directory(&["bookshelf@1.0.0.wasm"]);
        let (second, _) = directory(&["bookshelf@3.0.0.wasm"]);
        let plugins = PluginDirectory::new([first.path().to_owned(), second.path().to_owned()]);
        assert_eq!(
            found(&plugins, "bookshelf").unwrap(),
            "bookshelf@1.0.0.wasm"
        );
        assert_eq!(
            found(&plugins, "bookshelf@3").unwrap(),
            "bookshelf@3.0.0.wasm"
        );
    }

    #[test]
    fn own_versions_are_found_first_by_name_and_pin_and_the_directories_after() {
        let (_dir, shared) = directory(&["bookshelf@9.0.0.wasm"]);
        let plugins = shared
            .with_own("bookshelf", "1.2.0", PathBuf::from("own-1.2.0.wasm"))
            .with_own("bookshelf", "1.10.0", PathBuf::from("own-1.10.0.wasm"))
            .with_own("bookshelf", "2.0.0-rc.1", PathBuf::from("own-2-rc.wasm"))
            .with_own("legacy", "not semver", PathBuf::from("legacy.wasm"));
        assert_eq!(found(&plugins, "bookshelf").unwrap(), "own-1.10.0.wasm");
        assert_eq!(found(&plugins, "bookshelf@1.2").unwrap(), "own-1.2.0.wasm");
        assert_eq!(
            found(&plugins, "bookshelf@2.0.0-rc.1").unwrap(),
            "own-2-rc.wasm"
        );
        // A pin the tenant's own versions do not meet is looked for in the directories.
        assert_eq!(
            found(&plugins, "bookshelf@9").unwrap(),
            "bookshelf@9.0.0.wasm"
        );
        assert_eq!(found(&plugins, "legacy").unwrap(), "legacy.wasm");
        assert!(found(&plugins, "legacy@1").is_err());
        let available = plugins.available();
        assert!(
            available.contains(&"bookshelf@1.10.0".to_owned()),
            "{available:?}"
        );
    }

    #[test]
    fn names_and_versions_are_checked_at_their_edges() {
        assert!(valid_plugin_name("a"));
        assert!(valid_plugin_name(&"a".repeat(64)));
        assert!(!valid_plugin_name(&"a".repeat(65)));
        assert!(!valid_plugin_name(""));
        for bad in ["Bookshelf", "book shelf", "../x", "a@1", "a/b", "a.b"] {
            assert!(!valid_plugin_name(bad), "{bad}");
        }
        assert!(valid_plugin_version("1.2.0"));
        assert!(valid_plugin_version("2.0.0-beta.1+build.5"));
        for bad in ["1.2", "../1.0.0", "1.0.0/x", "", "v1.0.0"] {
            assert!(!valid_plugin_version(bad), "{bad}");
        }
        assert!(!valid_plugin_version(&format!("1.0.0-{}", "a".repeat(60))));
    }
}
