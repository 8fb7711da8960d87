//! `weft dataset`: the records flows keep in weft's own store (`plugin = "dataset"`).

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::Value;

#[derive(Subcommand)]
pub enum DatasetCommand {
    /// Datasets with their sizes.
    List,
    /// The first records of a dataset, one JSON object per line.
    Show {
        name: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Every record of a dataset, to standard output.
    Export {
        name: String,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Upserts records into a dataset from JSON Lines (one object per line), as a flow's
    /// `upsert` write would: a record with the same key replaces the one there.
    Import {
        name: String,
        /// The key fields, comma-separated (`--key crm,id`); every record must have them.
        #[arg(long, value_delimiter = ',', required = true)]
        key: Vec<String>,
        /// The JSON Lines file; standard input when absent.
        file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

const PAGE: u32 = 1_000;

/// Upserts the JSON Lines of `input` (named `source` in errors) into `dataset`, keyed by `key`.
/// Nothing is written unless every line is a JSON object with every key field: a file is
/// imported whole or not at all. Returns how many records were upserted.
pub async fn import(
    store: &weft_store::Store,
    tenant: &str,
    dataset: &str,
    key: &[String],
    source: &str,
    input: impl BufRead,
) -> anyhow::Result<usize> {
    let mut rows = Vec::new();
    for (number, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading {source}"))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{source}:{}", number + 1);
        let record: Value =
            serde_json::from_str(&line).with_context(|| format!("{}: not JSON", at()))?;
        if !record.is_object() {
            bail!(
                "{}: a record must be a JSON object, not `{}`",
                at(),
                line.trim()
            );
        }
        let k = weft_engine::dataset_key(&record, key).map_err(|missing| {
            anyhow::anyhow!(
                "{}: key field `{missing}` is missing or null (the key is {})",
                at(),
                key.join(", ")
            )
        })?;
        rows.push((k, record.to_string()));
    }
    store.dataset_upsert(tenant, dataset, &rows).await?;
    Ok(rows.len())
}

fn csv_field(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

pub async fn run(data_dir: &Path, tenant: &str, command: DatasetCommand) -> anyhow::Result<()> {
    let store = crate::store(data_dir).await?;
    match command {
        DatasetCommand::List => {
            let datasets = store.dataset_list(tenant).await?;
            if datasets.is_empty() {
                eprintln!(
                    "no datasets for tenant `{tenant}`; a flow writes one with a `plugin = \"dataset\"` connection"
                );
            }
            for d in datasets {
                out!(
                    "{}\t{} records\t{}",
                    d.name,
                    d.records,
                    humantime::format_rfc3339_seconds(d.updated_at)
                )?;
            }
        }
        DatasetCommand::Show { name, limit } => {
            let rows = store.dataset_page(tenant, &name, None, limit).await?;
            if rows.is_empty() {
                bail!("dataset `{name}` is empty or does not exist (see `weft dataset list`)");
            }
            for (_, record) in rows {
                out!("{record}")?;
            }
        }
        DatasetCommand::Export { name, format } => {
            // CSV columns are the union of top-level fields: a first pass collects them.
            let mut columns = BTreeSet::new();
            if let Format::Csv = format {
                let mut after = None;
                loop {
                    let rows = store
                        .dataset_page(tenant, &name, after.as_deref(), PAGE)
                        .await?;
                    for (_, record) in &rows {
                        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(record) {
                            columns.extend(map.keys().cloned());
                        }
                    }
                    match rows.last() {
                        Some((k, _)) if rows.len() == PAGE as usize => after = Some(k.clone()),
                        _ => break,
                    }
                }
                out!(
                    "{}",
                    columns
                        .iter()
                        .map(|c| csv_field(Some(&Value::String(c.clone()))))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
            }
            let mut after = None;
            let mut count = 0;
            loop {
                let rows = store
                    .dataset_page(tenant, &name, after.as_deref(), PAGE)
                    .await?;
                for (_, record) in &rows {
                    count += 1;
                    match format {
                        Format::Jsonl => out!("{record}")?,
                        Format::Csv => {
                            let value: Value = serde_json::from_str(record).unwrap_or(Value::Null);
                            out!(
                                "{}",
                                columns
                                    .iter()
                                    .map(|c| csv_field(value.get(c)))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            )?;
                        }
                    }
                }
                match rows.last() {
                    Some((k, _)) if rows.len() == PAGE as usize => after = Some(k.clone()),
                    _ => break,
                }
            }
            if count == 0 {
                bail!("dataset `{name}` is empty or does not exist (see `weft dataset list`)");
            }
        }
        DatasetCommand::Import { name, key, file } => {
            let count = match &file {
                Some(path) => {
                    let reader = std::io::BufReader::new(
                        std::fs::File::open(path)
                            .with_context(|| format!("opening {}", path.display()))?,
                    );
                    import(
                        &store,
                        tenant,
                        &name,
                        &key,
                        &path.display().to_string(),
                        reader,
                    )
                    .await?
                }
                None => {
                    import(
                        &store,
                        tenant,
                        &name,
                        &key,
                        "standard input",
                        std::io::stdin().lock(),
                    )
                    .await?
                }
            };
            eprintln!("{count} records upserted into `{name}`");
        }
    }
    Ok(())
}
