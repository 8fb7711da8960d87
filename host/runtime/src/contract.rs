//! Which contract a component was built against, read from its imports and exports before
//! anything is linked, so a mismatch is reported with both versions rather than as a missing
//! import.

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::LoadError;

/// The `weft:plugin` version this host implements.
pub const CONTRACT_VERSION: &str = "0.2.0";

const PACKAGE: &str = "weft:plugin/";

/// What a plugin is, by the world it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Connector,
    Transform,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Connector => "connector",
            PluginKind::Transform => "transform",
        })
    }
}

fn parse(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

/// Whether a guest built against `guest` runs on a host implementing `host`: the same major
/// version (the same minor while the major is 0) and nothing newer than the host.
pub fn compatible(guest: &str, host: &str) -> bool {
    match (parse(guest), parse(host)) {
        (Some((gmaj, gmin, gpatch)), Some((hmaj, hmin, hpatch))) => {
            gmaj == hmaj
                && if hmaj == 0 {
                    gmin == hmin && gpatch <= hpatch
                } else {
                    gmin <= hmin
                }
        }
        _ => false,
    }
}

/// Splits `weft:plugin/http@0.2.0` into `("http", "0.2.0")`.
fn weft_interface(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

/// The kind of plugin `component` is and the contract version it was built against, or why it
/// cannot be loaded.
pub(crate) fn classify(
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<(PluginKind, String), LoadError> {
    let ty = component.component_type();
    let incompatible = |found: &str| LoadError::IncompatibleContract {
        name: name.to_owned(),
        found: if found.is_empty() {
            "(unversioned)".to_owned()
        } else {
            found.to_owned()
        },
        supported: CONTRACT_VERSION.to_owned(),
    };
    for (import, _) in ty.imports(engine) {
        match weft_interface(import) {
            Some((_, version)) if !compatible(version, CONTRACT_VERSION) => {
                return Err(incompatible(version));
            }
            Some(_) => {}
            None if import.starts_with("wasi:") => {}
            None => {
                return Err(LoadError::UnknownImport {
                    name: name.to_owned(),
                    import: import.to_owned(),
                });
            }
        }
    }
    let mut exports = Vec::new();
    for (export, _) in ty.exports(engine) {
        if let Some((interface, version)) = weft_interface(export) {
            let kind = match interface {
                "connector-api" => PluginKind::Connector,
                "transform-api" => PluginKind::Transform,
                _ => continue,
            };
            if !compatible(version, CONTRACT_VERSION) {
                return Err(incompatible(version));
            }
            return Ok((kind, version.to_owned()));
        }
        exports.push(export.to_owned());
    }
    Err(LoadError::NotAPlugin {
        name: name.to_owned(),
        exports: if exports.is_empty() {
            "nothing".to_owned()
        } else {
            exports.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn zero_major_versions_need_the_same_minor() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.0", "0.1.3"));
        assert!(!compatible("0.1.4", "0.1.3"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("0.0.9", "0.1.0"));
        assert!(!compatible("0.1.0", "0.2.0"));
    }

    #[test]
    fn later_majors_accept_older_minors_only() {
        assert!(compatible("1.0.0", "1.2.0"));
        assert!(!compatible("1.3.0", "1.2.0"));
        assert!(!compatible("2.0.0", "1.2.0"));
        assert!(!compatible("", "1.2.0"));
    }
}
