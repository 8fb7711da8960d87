//! The transform checks: describe, output schema, rejects, determinism and statelessness, over
//! sample records the author gives.

use std::time::Instant;

use serde_json::{Value, json};
use weft_runtime::bindings::PluginError;
use weft_runtime::{Batch, BatchResult, CallContext, CallError, TransformPlugin};

use crate::schema;
use crate::{Check, Outcome, Report};

/// What a transform is checked over: a step config and sample input records.
pub struct Sample {
    pub config: Value,
    /// A JSON array of records, as the step would receive them.
    pub records: Vec<Value>,
    /// The lookup input's records, for transforms that take one.
    pub lookup: Option<Vec<Value>>,
}

struct Bench<'a> {
    plugin: &'a TransformPlugin,
    sample: &'a Sample,
    context: CallContext,
}

impl Bench<'_> {
    async fn process(&self, records: &[Value]) -> Result<BatchResult, CallError> {
        let lookup = match (&self.sample.lookup, self.plugin.info().takes_lookup) {
            (Some(lookup), _) => Some(Value::Array(lookup.clone()).to_string()),
            (None, true) => Some("[]".to_owned()),
            (None, false) => None,
        };
        self.plugin
            .process(
                &self.context,
                Batch {
                    config: self.sample.config.to_string(),
                    records: Value::Array(records.to_vec()).to_string(),
                    lookup,
                },
            )
            .await
    }
}

/// Runs every transform check on `plugin` over `sample`.
pub async fn check(plugin: &TransformPlugin, sample: &Sample) -> Report {
    let info = plugin.info();
    let mut report = Report::new(format!("{} {} (transform)", info.name, info.version));
    let bench = Bench {
        plugin,
        sample,
        context: CallContext::new("default"),
    };
    report
        .timed(
            "describe_is_valid",
            "name, version and description set; the config schema an object",
            async { describe_is_valid(plugin) },
        )
        .await;
    if sample.records.is_empty() {
        report.checks.push(Check {
            name: "sample_has_records",
            pins: "the checks run over sample records",
            outcome: Outcome::Failed(
                "the sample input holds no records: give a JSON array of a few typical records"
                    .into(),
            ),
            took: std::time::Duration::ZERO,
        });
        return report;
    }
    let input_schema = schema::infer(&sample.records);
    let lookup_schema = sample.lookup.as_deref().map(schema::infer);
    let started = Instant::now();
    let output_schema = plugin
        .output_schema(
            &bench.context,
            &sample.config,
            &input_schema,
            lookup_schema.as_ref(),
        )
        .await;
    report.checks.push(Check {
        name: "output_schema_accepts_the_config",
        pins: "`output-schema` answers an object schema for the config and the sample's schema, before any data moves",
        outcome: match &output_schema {
            Ok(s) => match schema::properties(s) {
                Ok(p) => Outcome::Passed(format!("{} output field(s)", p.len())),
                Err(e) => Outcome::Failed(e),
            },
            Err(e) => Outcome::Failed(format!("output-schema failed: {e}")),
        },
        took: started.elapsed(),
    });
    report
        .timed(
            "output_schema_refuses_a_config_of_the_wrong_shape",
            "a config that does not fit the config schema is a `config` error, not a crash",
            output_schema_refuses_a_bad_config(&bench, &input_schema),
        )
        .await;

    let started = Instant::now();
    let first = bench.process(&sample.records).await;
    report.checks.push(Check {
        name: "output_honours_its_schema",
        pins: "`process` of the sample succeeds and every output record fits the schema `output-schema` answered",
        outcome: output_honours_its_schema(&first, output_schema.as_ref().ok()),
        took: started.elapsed(),
    });
    report
        .timed(
        "rejects_are_indexed",
        "a record the transform cannot handle is a reject naming its index, not a failed batch; the others still come out",
        rejects_are_indexed(&bench),
    )
    .await;
    report
        .timed(
            "output_is_deterministic",
            "the same batch twice gives the same output, byte for byte",
            output_is_deterministic(&bench, first.as_ref().ok()),
        )
        .await;
    report
        .timed(
            "no_state_between_batches",
            "a batch gives the same output whatever batches ran before it",
            no_state_between_batches(&bench),
        )
        .await;
    report
}

fn describe_is_valid(plugin: &TransformPlugin) -> Outcome {
    let info = plugin.info();
    let problems = crate::identity_problems(
        &info.name,
        &info.version,
        &info.description,
        &info.config_schema,
    );
    if problems.is_empty() {
        Outcome::Passed(format!(
            "{}{}",
            info.name,
            if info.takes_lookup {
                ", takes a lookup input"
            } else {
                ""
            }
        ))
    } else {
        Outcome::Failed(problems.join("; "))
    }
}

async fn output_schema_refuses_a_bad_config(bench: &Bench<'_>, input: &Value) -> Outcome {
    let config_schema: Value =
        serde_json::from_str(&bench.plugin.info().config_schema).unwrap_or(Value::Null);
    let required = config_schema
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    if !required {
        return Outcome::Skipped(
            "the config schema requires nothing, so every object is a config of the right shape"
                .into(),
        );
    }
    match bench
        .plugin
        .output_schema(&bench.context, &json!({}), input, None)
        .await
    {
        Err(e) => match e.plugin_error() {
            Some(PluginError::Config(m)) => Outcome::Passed(format!("config: {m}")),
            _ => Outcome::Failed(format!(
                "an empty config, missing what the schema requires, must be a `config` error, got: {e}"
            )),
        },
        Ok(_) => Outcome::Failed(
            "an empty config was accepted though the config schema requires members".into(),
        ),
    }
}

fn output_honours_its_schema(
    result: &Result<BatchResult, CallError>,
    output_schema: Option<&Value>,
) -> Outcome {
    let result = match result {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("process failed on the sample: {e}")),
    };
    let records: Vec<Value> = match serde_json::from_str(&result.records) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("the output is not a JSON array: {e}")),
    };
    let Some(output_schema) = output_schema else {
        return Outcome::Skipped("output-schema failed, so there is no schema to hold to".into());
    };
    for record in &records {
        if let Err(e) = schema::check_record(output_schema, record) {
            return Outcome::Failed(e);
        }
    }
    Outcome::Passed(format!(
        "{} record(s) out, {} reject(s), all fitting the output schema",
        records.len(),
        result.rejects.len()
    ))
}

/// A record shaped like the sample's, each member of the wrong type.
fn mangled(record: &Value) -> Value {
    match record {
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(k, v)| {
                    let wrong = match v {
                        Value::String(_) => json!([["not", "a", "string"]]),
                        Value::Number(_) => json!({"not": "a number"}),
                        Value::Bool(_) => json!("not a boolean"),
                        Value::Null => json!(17),
                        Value::Array(_) => json!("not an array"),
                        Value::Object(_) => json!(false),
                    };
                    (k.clone(), wrong)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn rejects_are_indexed(bench: &Bench<'_>) -> Outcome {
    let mut batch = bench.sample.records.clone();
    let bad = batch.len();
    batch.push(mangled(&bench.sample.records[0]));
    batch.push(json!({}));
    let result = match bench.process(&batch).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failed(format!(
                "one record of the wrong shape failed the whole batch: {e} (reject it by its index instead)"
            ));
        }
    };
    let mut indices: Vec<u32> = result.rejects.iter().map(|r| r.index).collect();
    indices.sort_unstable();
    indices.dedup();
    if indices.len() != result.rejects.len() {
        return Outcome::Failed("a record was rejected twice".into());
    }
    if let Some(wrong) = result.rejects.iter().find(|r| (r.index as usize) < bad) {
        return Outcome::Failed(format!(
            "sample record {} was rejected ({}) only because two bad records came after it",
            wrong.index, wrong.reason
        ));
    }
    Outcome::Passed(format!(
        "{} of the 2 bad records rejected by index{}",
        result.rejects.len(),
        result
            .rejects
            .first()
            .map(|r| format!(", e.g. #{}: {}", r.index, r.reason))
            .unwrap_or_default()
    ))
}

/// Whether two results are the same: the same records, text for text, and the same rejects.
fn same(a: &BatchResult, b: &BatchResult) -> bool {
    let rejects = |r: &BatchResult| -> Vec<(u32, String, Option<String>)> {
        r.rejects
            .iter()
            .map(|x| (x.index, x.reason.clone(), x.field.clone()))
            .collect()
    };
    a.records == b.records && rejects(a) == rejects(b)
}

async fn output_is_deterministic(bench: &Bench<'_>, first: Option<&BatchResult>) -> Outcome {
    let Some(first) = first else {
        return Outcome::Skipped("process failed on the sample".into());
    };
    match bench.process(&bench.sample.records).await {
        Ok(second) if same(&second, first) => {
            Outcome::Passed("the same output twice".into())
        }
        Ok(_) => Outcome::Failed(
            "the same batch gave a different output the second time (time, randomness or order of a map?)".into(),
        ),
        Err(e) => Outcome::Failed(format!("the second run of the same batch failed: {e}")),
    }
}

async fn no_state_between_batches(bench: &Bench<'_>) -> Outcome {
    let records = &bench.sample.records;
    let (a, b) = records.split_at(records.len().div_ceil(2));
    let a_alone = bench.process(a).await;
    if !b.is_empty()
        && let Err(e) = bench.process(b).await
    {
        return Outcome::Failed(format!("the second half of the sample failed: {e}"));
    }
    let a_again = bench.process(a).await;
    match (a_alone, a_again) {
        (Ok(x), Ok(y)) if same(&x, &y) => Outcome::Passed(
            "the first half gave the same output before and after the second half".into(),
        ),
        (Ok(_), Ok(_)) => Outcome::Failed(
            "the first half of the sample gave another output after the second half ran: something carries over between batches".into(),
        ),
        (Err(e), _) | (_, Err(e)) => Outcome::Failed(format!("half of the sample failed: {e}")),
    }
}
