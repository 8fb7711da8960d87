//! Plugin projects, as a third-party author works on them.
//!
//! - [`create`]: a new project for a language and a kind, from the templates carried in this
//!   crate, with the WIT contract and the language's helper layer written beside it (the Rust
//!   SDK as a path dependency, `weft.js` for JavaScript, `weft_plugin.py` for Python), so it
//!   builds with no registry but the language's own.
//! - [`Manifest`]: the project's `weft-plugin.toml`: what it is, how it is built, what
//!   `weft plugin test` checks it against.
//! - [`build`]: runs the manifest's build commands and returns the component they made.

mod helpers;
mod manifest;
mod project;

pub use manifest::{BuildSection, Kind, Language, MANIFEST, Manifest, PluginSection, TestSection};
pub use project::{build, create};

use std::path::PathBuf;

/// Why a project could not be made, read or built.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    #[error(
        "`{0}` cannot name a plugin project: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
    )]
    BadName(String),
    #[error("this weft has no {language} template for a {kind}")]
    NoTemplate { language: Language, kind: Kind },
    #[error("{} exists and is not empty; choose a new directory (--dir) for the project", .0.display())]
    NotEmpty(PathBuf),
    #[error("{} has no {MANIFEST}: run this in a plugin project (made by `weft plugin new`), or pass --project DIR", .0.display())]
    NoManifest(PathBuf),
    #[error("{file}: {message}", file = .file.display())]
    BadManifest { file: PathBuf, message: String },
    #[error("`{program}` was not found: {hint}")]
    MissingTool { program: String, hint: &'static str },
    #[error("`{command}` failed ({status}) in {}; its output is above", .dir.display())]
    BuildFailed {
        command: String,
        status: String,
        dir: PathBuf,
    },
    #[error("the build ran but made no {}; check [build] output in {MANIFEST}", .0.display())]
    NoOutput(PathBuf),
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}
