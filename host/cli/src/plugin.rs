//! `weft plugin install` and `weft plugin list`: plugins kept in the data directory under the
//! name and version their own `describe` gives, found by flows by that name.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use weft_engine::PluginDirectory;
use weft_engine::registry::{installed_file_name, valid_plugin_name, valid_plugin_version};

/// Checks `file` as a weft plugin and copies it into `<data>/plugins/NAME@VERSION.wasm`.
/// Installing the same bytes again is a no-op; other bytes under an installed version are
/// refused unless `replace`: a version names one build.
pub async fn install(data_dir: &Path, file: &Path, replace: bool) -> anyhow::Result<()> {
    let runtime = crate::runtime(data_dir)?;
    let plugin = runtime
        .load_file(file)
        .await
        .with_context(|| format!("installing {}", file.display()))?;
    let (kind, name, version) = (plugin.kind(), plugin.name(), plugin.version());
    if !valid_plugin_name(name) {
        bail!(
            "{} calls itself `{name}`: a plugin's name is 1 to 64 characters from a-z, 0-9, '-' and '_'; change the name its describe gives",
            file.display()
        );
    }
    if !valid_plugin_version(version) {
        bail!(
            "{} gives its version as `{version}`: an installed plugin's version is a semantic version such as 1.2.0; change the version its describe gives",
            file.display()
        );
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let dir = data_dir.join("plugins");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let target = dir.join(installed_file_name(name, version));
    // Written, not printed: a reader that went away (`| head -1`) ends weft quietly.
    let mut out = std::io::stdout().lock();
    match std::fs::read(&target) {
        Ok(existing) if existing == bytes => {
            writeln!(
                out,
                "{name} {version} ({kind}) is installed already: {}",
                target.display()
            )?;
            return Ok(());
        }
        Ok(_) if !replace => bail!(
            "{name} {version} is installed already, built differently ({}); give the new build a new version, or pass --replace to overwrite it",
            target.display()
        ),
        _ => {}
    }
    // Whole or not at all: a flow starting meanwhile never loads half a component.
    let partial = dir.join(format!(".{}.partial", installed_file_name(name, version)));
    std::fs::write(&partial, &bytes).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &target)
        .with_context(|| format!("moving the plugin into {}", target.display()))?;
    writeln!(
        out,
        "installed {name} {version} ({kind}) as {}",
        target.display()
    )?;
    writeln!(
        out,
        "flows name it `{name}` (the highest version installed) or `{name}@{version}` to pin this one"
    )?;
    Ok(())
}

/// Every plugin the search path holds, with what each says it is.
pub async fn list(data_dir: &Path, dirs: Vec<PathBuf>) -> anyhow::Result<()> {
    let runtime = crate::runtime(data_dir)?;
    let directory: PluginDirectory = crate::plugin_directory(data_dir, dirs);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:<12} {:<10} file", "name", "version", "kind")?;
    for dir in directory.dirs() {
        for file in components_in(dir) {
            match runtime.load_file(&file).await {
                Ok(plugin) => writeln!(
                    out,
                    "{:<24} {:<12} {:<10} {}",
                    plugin.name(),
                    plugin.version(),
                    plugin.kind().to_string(),
                    file.display()
                )?,
                Err(e) => writeln!(
                    out,
                    "{:<24} {:<12} {:<10} {} ({e})",
                    "?",
                    "?",
                    "not loaded",
                    file.display()
                )?,
            }
        }
    }
    Ok(())
}

/// The `.wasm` files of `dir`, in name order; none if it cannot be read.
fn components_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    files.sort();
    files
}

/// `directory` with each component of the `--plugins` directories also found by the name and
/// version its own `describe` gives, as an installed one is: a build's output
/// (`dist/book_shelf.wasm`, which calls itself `book-shelf`) needs no install to be tried in a
/// flow. Loading them uses the compiled-plugin cache; one that does not load is left to be
/// found, and refused, by its file name.
pub async fn described(
    data_dir: &Path,
    mut directory: PluginDirectory,
    dirs: &[PathBuf],
) -> anyhow::Result<PluginDirectory> {
    if dirs.is_empty() {
        return Ok(directory);
    }
    let runtime = crate::runtime(data_dir)?;
    for file in dirs.iter().flat_map(|dir| components_in(dir)) {
        // Installed files (`NAME@VERSION.wasm`) are found by their name already.
        if file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains('@'))
        {
            continue;
        }
        if let Ok(plugin) = runtime.load_file(&file).await {
            directory = directory.with_own(plugin.name(), plugin.version(), file);
        }
    }
    Ok(directory)
}
