//! `weft-plugin.toml`: a plugin project's manifest.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::AuthoringError;

/// The manifest's file name, at the project's root.
pub const MANIFEST: &str = "weft-plugin.toml";

/// What a project is, how it is built and what its tests check.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub plugin: PluginSection,
    pub build: BuildSection,
    #[serde(default)]
    pub test: TestSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// The name its `describe` gives; flows name the plugin by it.
    pub name: String,
    pub kind: Kind,
    pub language: Language,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Connector,
    Transform,
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s {
            "connector" => Ok(Kind::Connector),
            "transform" => Ok(Kind::Transform),
            _ => Err(format!(
                "`{s}` is not a kind of plugin: connector or transform"
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Connector => "connector",
            Kind::Transform => "transform",
        })
    }
}

/// The languages `weft plugin new` has templates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Rust,
    Js,
    Python,
}

impl Language {
    pub fn slug(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Js => "js",
            Language::Python => "python",
        }
    }

    /// What a missing build tool needs, for the error that names it.
    pub fn toolchain_hint(self) -> &'static str {
        match self {
            Language::Rust => {
                "install Rust with rustup (https://rustup.rs), then `rustup target add wasm32-wasip2`"
            }
            Language::Js => {
                "install Node.js 20 or later with npm; the build fetches componentize-js from the npm registry"
            }
            Language::Python => {
                "install Python 3.10 or later with venv and pip; the build fetches componentize-py from PyPI"
            }
        }
    }
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Language, String> {
        match s {
            "rust" => Ok(Language::Rust),
            "js" | "javascript" => Ok(Language::Js),
            "python" | "py" => Ok(Language::Python),
            _ => Err(format!("weft has no `{s}` template: rust, js or python")),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Commands run in order in the project's directory, each a program and its arguments.
    pub commands: Vec<Vec<String>>,
    /// The component the commands make, relative to the project.
    pub output: PathBuf,
}

/// What `weft plugin test` checks the project's component against, unless told otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSection {
    /// Connectors: `sandbox:VENDOR` or a base URL.
    pub against: Option<String>,
    /// Connectors: the connection's config (`{url}` stands for the upstream's base URL).
    /// Transforms: the step's config.
    pub config: Option<serde_json::Value>,
    /// Connectors: the connection's auth, as a flow's `auth` table; the sandbox's demo
    /// credential when absent.
    pub auth: Option<serde_json::Value>,
    /// Connectors: the stream the read checks use.
    pub stream: Option<String>,
    /// Connectors: the page size reads ask for.
    pub page_size: Option<u32>,
    /// Transforms: a JSON array of sample records, relative to the project.
    pub input: Option<PathBuf>,
    /// Transforms that take a lookup input: its sample records.
    pub lookup: Option<PathBuf>,
}

impl Manifest {
    /// Reads `dir/weft-plugin.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, AuthoringError> {
        let file = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuthoringError::NoManifest(dir.to_owned()));
            }
            Err(source) => {
                return Err(AuthoringError::Io {
                    action: "reading",
                    path: file,
                    source,
                });
            }
        };
        Manifest::parse(&text).map_err(|message| AuthoringError::BadManifest { file, message })
    }

    /// Parses a manifest's text; the error names the line and column.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if manifest.build.commands.iter().any(Vec::is_empty) || manifest.build.commands.is_empty() {
            return Err("[build] commands: give at least one command, each a non-empty list such as [\"npm\", \"run\", \"build\"]".into());
        }
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_reads_its_sections_and_names_what_is_wrong() {
        let m = Manifest::parse(
            r#"
[plugin]
name = "bookshelf"
kind = "transform"
language = "python"
[build]
commands = [["python3", "build.py"]]
output = "dist/bookshelf.wasm"
[test]
config = { fields = { a = "b" } }
input = "tests/input.json"
"#,
        )
        .unwrap();
        assert_eq!(m.plugin.kind, Kind::Transform);
        assert_eq!(m.plugin.language, Language::Python);
        assert_eq!(
            m.test.config,
            Some(serde_json::json!({"fields": {"a": "b"}}))
        );

        let unknown = Manifest::parse(
            "[plugin]\nname = \"x\"\nkind = \"sink\"\nlanguage = \"rust\"\n[build]\ncommands = [[\"make\"]]\noutput = \"x.wasm\"\n",
        )
        .unwrap_err();
        assert!(
            unknown.contains("line 3") && unknown.contains("sink"),
            "{unknown}"
        );
        let empty = Manifest::parse(
            "[plugin]\nname = \"x\"\nkind = \"connector\"\nlanguage = \"rust\"\n[build]\ncommands = [[]]\noutput = \"x.wasm\"\n",
        )
        .unwrap_err();
        assert!(empty.contains("non-empty"), "{empty}");
    }
}
