//! Making a project from a template, and building one.

use std::path::{Path, PathBuf};
use std::process::Command;

use include_dir::{Dir, include_dir};

use crate::AuthoringError;
use crate::manifest::{Kind, Language, Manifest};

/// `templates/LANGUAGE/KIND/`: each file copied with `{{name}}` and `{{name_snake}}` replaced.
static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");
/// The WIT contract, as the host links it.
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../wit");
/// The Rust SDK's sources; its manifest beside them.
static RUST_SDK: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/src");
const RUST_SDK_MANIFEST: &str = include_str!("../../../sdk/Cargo.toml");

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AuthoringError {
    let path = path.to_owned();
    move |source| AuthoringError::Io {
        action,
        path,
        source,
    }
}

/// Whether `name` can name a project in every language: a plugin name (a-z, 0-9, `-`, `_`)
/// that starts with a letter, as crate, package and module names must.
fn valid_project_name(name: &str) -> bool {
    weft_engine::registry::valid_plugin_name(name)
        && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Writes a new project for a `kind` of plugin in `language` into `dir` (made if missing,
/// refused if not empty). Returns the files written, relative to `dir`.
pub fn create(
    dir: &Path,
    name: &str,
    kind: Kind,
    language: Language,
) -> Result<Vec<PathBuf>, AuthoringError> {
    if !valid_project_name(name) {
        return Err(AuthoringError::BadName(name.to_owned()));
    }
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io("reading", dir))?;
        if entries.next().is_some() {
            return Err(AuthoringError::NotEmpty(dir.to_owned()));
        }
    }
    let template = TEMPLATES
        .get_dir(format!("{}/{kind}", language.slug()))
        .ok_or(AuthoringError::NoTemplate { language, kind })?;
    let name_snake = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name_snake}}", &name_snake)
            .replace("{{name}}", name)
    };
    let mut files = Vec::new();
    let mut write = |path: PathBuf, contents: &[u8]| -> Result<(), AuthoringError> {
        let target = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating", parent))?;
        }
        std::fs::write(&target, contents).map_err(io("writing", &target))?;
        files.push(path);
        Ok(())
    };
    for file in all_files(template) {
        let relative = file
            .path()
            .strip_prefix(template.path())
            .expect("a template's files are under it");
        let path = PathBuf::from(fill(&relative.to_string_lossy()));
        match file.contents_utf8() {
            Some(text) => write(path, fill(text).as_bytes())?,
            None => write(path, file.contents())?,
        }
    }
    // The contract beside the code: the Rust SDK reads it from its own directory, the
    // JavaScript and Python builds from the project's `wit/`.
    let wit_dir = match language {
        Language::Rust => PathBuf::from("weft-sdk/wit"),
        Language::Js | Language::Python => PathBuf::from("wit"),
    };
    for file in all_files(&WIT) {
        write(wit_dir.join(file.path()), file.contents())?;
    }
    match language {
        Language::Rust => {
            write(
                PathBuf::from("weft-sdk/Cargo.toml"),
                RUST_SDK_MANIFEST.as_bytes(),
            )?;
            for file in all_files(&RUST_SDK) {
                write(Path::new("weft-sdk/src").join(file.path()), file.contents())?;
            }
        }
        Language::Js => write(PathBuf::from("weft.js"), crate::helpers::JS.as_bytes())?,
        Language::Python => write(
            PathBuf::from("weft_plugin.py"),
            crate::helpers::PYTHON.as_bytes(),
        )?,
    }
    files.sort();
    Ok(files)
}

fn all_files<'a>(dir: &'a Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut files: Vec<&include_dir::File<'_>> = dir.files().collect();
    for sub in dir.dirs() {
        files.extend(all_files(sub));
    }
    files
}

/// Runs the project's build commands in `dir`, in order, with their output shown, and returns
/// the component they made.
pub fn build(dir: &Path, manifest: &Manifest) -> Result<PathBuf, AuthoringError> {
    for command in &manifest.build.commands {
        let (program, args) = command
            .split_first()
            .expect("a parsed manifest has no empty command");
        let shown = command.join(" ");
        let status = Command::new(program)
            .args(args)
            .current_dir(dir)
            .status()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => AuthoringError::MissingTool {
                    program: program.clone(),
                    hint: manifest.plugin.language.toolchain_hint(),
                },
                _ => AuthoringError::Io {
                    action: "running",
                    path: PathBuf::from(&shown),
                    source: e,
                },
            })?;
        if !status.success() {
            return Err(AuthoringError::BuildFailed {
                command: shown,
                status: status.to_string(),
                dir: dir.to_owned(),
            });
        }
    }
    let output = dir.join(&manifest.build.output);
    if !output.is_file() {
        return Err(AuthoringError::NoOutput(output));
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_project_holds_the_sdk_and_the_contract_and_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("book-shelf");
        let files = create(&project, "book-shelf", Kind::Connector, Language::Rust).unwrap();
        for expected in [
            "Cargo.toml",
            "src/lib.rs",
            "weft-plugin.toml",
            "README.md",
            "weft-sdk/Cargo.toml",
            "weft-sdk/src/lib.rs",
            "weft-sdk/wit/worlds.wit",
        ] {
            assert!(
                files.contains(&PathBuf::from(expected)),
                "{expected} in {files:?}"
            );
        }
        let manifest = Manifest::load(&project).unwrap();
        assert_eq!(manifest.plugin.name, "book-shelf");
        assert_eq!(
            manifest.build.output,
            PathBuf::from("target/wasm32-wasip2/release/book_shelf.wasm")
        );
        let source = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(source.contains(r#"ConnectorInfo::new("book-shelf""#));
        assert!(!source.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn a_project_is_not_written_over_another_nor_under_a_bad_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = create(dir.path(), "ok", Kind::Transform, Language::Rust).unwrap_err();
        assert!(matches!(err, AuthoringError::NotEmpty(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
        for bad in ["", "Upper", "9lives", "a/b", "../x", &"x".repeat(65)] {
            let err = create(
                &dir.path().join("new"),
                bad,
                Kind::Transform,
                Language::Rust,
            )
            .unwrap_err();
            assert!(matches!(err, AuthoringError::BadName(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn a_missing_build_tool_is_named_with_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = Manifest::parse(
            "[plugin]\nname = \"x\"\nkind = \"transform\"\nlanguage = \"js\"\n[build]\ncommands = [[\"weft-no-such-tool-anywhere\", \"build\"]]\noutput = \"x.wasm\"\n",
        )
        .unwrap();
        let err = build(dir.path(), &manifest).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`weft-no-such-tool-anywhere` was not found")
                && message.contains("Node.js"),
            "{message}"
        );
    }

    #[test]
    fn a_failing_build_command_and_a_missing_output_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let failing = Manifest::parse(
            "[plugin]\nname = \"x\"\nkind = \"transform\"\nlanguage = \"rust\"\n[build]\ncommands = [[\"false\"]]\noutput = \"x.wasm\"\n",
        )
        .unwrap();
        assert!(matches!(
            build(dir.path(), &failing).unwrap_err(),
            AuthoringError::BuildFailed { .. }
        ));
        let silent = Manifest::parse(
            "[plugin]\nname = \"x\"\nkind = \"transform\"\nlanguage = \"rust\"\n[build]\ncommands = [[\"true\"]]\noutput = \"x.wasm\"\n",
        )
        .unwrap();
        assert!(matches!(
            build(dir.path(), &silent).unwrap_err(),
            AuthoringError::NoOutput(_)
        ));
    }
}
