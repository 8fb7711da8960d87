//! `weft dataset`: the records flows keep in weft's own store (`plugin = "dataset"`).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::bail;
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
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

const PAGE: u32 = 1_000;

fn csv_field(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => return String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

pub async fn run(data_dir: &Path, tenant: &str, command: DatasetCommand) -> anyhow::Result<()> {
    let store = crate::store(data_dir).await?;
    match command {
        DatasetCommand::List => {
            let datasets = store.dataset_list(tenant).await?;
            if datasets.is_empty() {
                eprintln!("no datasets for tenant `{tenant}`; a flow writes one with a `plugin = \"dataset\"` connection");
            }
            for d in datasets {
                println!("{}\t{} records\t{}", d.name, d.records, humantime::format_rfc3339_seconds(d.updated_at));
            }
        }
        DatasetCommand::Show { name, limit } => {
            let rows = store.dataset_page(tenant, &name, None, limit).await?;
            if rows.is_empty() {
                bail!("dataset `{name}` is empty or does not exist (see `weft dataset list`)");
            }
            for (_, record) in rows {
                println!("{record}");
            }
        }
        DatasetCommand::Export { name, format } => {
            // CSV columns are the union of top-level fields: a first pass collects them.
            let mut columns = BTreeSet::new();
            if let Format::Csv = format {
                let mut after = None;
                loop {
                    let rows = store.dataset_page(tenant, &name, after.as_deref(), PAGE).await?;
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
                println!("{}", columns.iter().map(|c| csv_field(Some(&Value::String(c.clone())))).collect::<Vec<_>>().join(","));
            }
            let mut after = None;
            let mut count = 0;
            loop {
                let rows = store.dataset_page(tenant, &name, after.as_deref(), PAGE).await?;
                for (_, record) in &rows {
                    count += 1;
                    match format {
                        Format::Jsonl => println!("{record}"),
                        Format::Csv => {
                            let value: Value = serde_json::from_str(record).unwrap_or(Value::Null);
                            println!("{}", columns.iter().map(|c| csv_field(value.get(c))).collect::<Vec<_>>().join(","));
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
    }
    Ok(())
}
