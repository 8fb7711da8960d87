use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::transform::exports::weft::plugin::transform_api as api;
use crate::{Error, Record, Result, decode_batch, encode_batch};

/// A transform plugin: batches of records in, records and rejects out.
///
/// The host calls [`process`](Transform::process) once per batch with the step's config, never
/// once per record. A record the transform cannot handle is a [`Reject`], which the host puts
/// in the run's error log; an `Err` fails the whole batch.
pub trait Transform {
    /// The step's `config`, deserialised; a mismatch is reported as a config error.
    type Config: DeserializeOwned;

    /// What the transform is and takes. Called once when the host loads the plugin.
    fn describe() -> TransformInfo;

    /// The JSON Schema of the output given the input's (and the lookup's) schema. Return a
    /// config error naming any field the config refers to that the input lacks, so the flow
    /// fails before it moves data. The default passes the input schema through.
    fn output_schema(
        config: &Self::Config,
        input: &Value,
        lookup: Option<&Value>,
    ) -> Result<Value> {
        let _ = (config, lookup);
        Ok(input.clone())
    }

    /// Transforms one batch. `lookup` holds the second input's records when the transform
    /// [`takes_lookup`](TransformInfo::takes_lookup()). Each call runs in a fresh instance, so
    /// nothing carries over from the previous batch.
    fn process(
        config: &Self::Config,
        records: Vec<Record>,
        lookup: Option<Vec<Record>>,
    ) -> Result<Output>;
}

/// What [`Transform::describe`] returns.
#[derive(Debug, Clone)]
pub struct TransformInfo {
    /// The transform's name, e.g. `map`.
    pub name: String,
    /// The plugin's version; `env!("CARGO_PKG_VERSION")` keeps it in step with the crate.
    pub version: String,
    /// One line for operators choosing a transform.
    pub description: String,
    /// JSON Schema of the step's `config`.
    pub config_schema: Value,
    /// Whether the transform takes a second input as a lookup table.
    pub takes_lookup: bool,
}

impl TransformInfo {
    /// A transform without a lookup input and with a config schema that accepts any object.
    pub fn new(name: &str, version: &str) -> Self {
        TransformInfo {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            config_schema: serde_json::json!({"type": "object"}),
            takes_lookup: false,
        }
    }
    /// One line for operators choosing a transform.
    pub fn description(mut self, text: &str) -> Self {
        self.description = text.into();
        self
    }
    /// The JSON Schema the step's `config` follows; `weft plugin inspect` shows it.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }
    /// Takes a second input as a lookup table, passed to every batch.
    pub fn takes_lookup(mut self) -> Self {
        self.takes_lookup = true;
        self
    }
}

/// A record refused by a transform, by its index in the input batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The record's position in the input batch.
    pub index: u32,
    /// Why the record was refused, for the run's error log.
    pub reason: String,
    /// The field at fault, when there is one.
    pub field: Option<String>,
}

/// The result of one batch.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The records passed on to the next step.
    pub records: Vec<Record>,
    /// Input records refused; the host logs them and the rest of the batch goes on.
    pub rejects: Vec<Reject>,
}

impl Output {
    /// `records` passed on, nothing refused.
    pub fn records(records: Vec<Record>) -> Self {
        Output {
            records,
            rejects: Vec::new(),
        }
    }
    /// Refuses input record `index` for `reason`, naming the field at fault if there is one.
    pub fn reject(&mut self, index: usize, reason: impl Into<String>, field: Option<&str>) {
        self.rejects.push(Reject {
            index: index as u32,
            reason: reason.into(),
            field: field.map(Into::into),
        });
    }
}

/// The step config deserialised, or a config error saying what is wrong with it.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::config(format!("step config: {e}")))
}

#[doc(hidden)]
pub mod __transform_glue {
    //! What [`export_transform!`](crate::export_transform) expands to call.
    use super::*;
    use crate::bindings::transform::weft::plugin::types::PluginError;

    type R<T> = std::result::Result<T, PluginError>;

    pub fn describe<T: Transform>() -> api::TransformInfo {
        let info = T::describe();
        api::TransformInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema.to_string(),
            takes_lookup: info.takes_lookup,
        }
    }

    fn schema(json: &str, what: &str) -> R<Value> {
        serde_json::from_str(json)
            .map_err(|e| PluginError::Config(format!("{what} schema is not JSON: {e}")))
    }

    pub fn output_schema<T: Transform>(
        config: String,
        input: String,
        lookup: Option<String>,
    ) -> R<String> {
        let config: T::Config = parse_config(&config)?;
        let input = schema(&input, "input")?;
        let lookup = lookup.map(|l| schema(&l, "lookup")).transpose()?;
        Ok(T::output_schema(&config, &input, lookup.as_ref())?.to_string())
    }

    pub fn process<T: Transform>(batch: api::Batch) -> R<api::BatchResult> {
        let config: T::Config = parse_config(&batch.config)?;
        let records = decode_batch(&batch.records)?;
        let lookup = batch.lookup.map(|l| decode_batch(&l)).transpose()?;
        let output = T::process(&config, records, lookup)?;
        Ok(api::BatchResult {
            records: encode_batch(&output.records),
            rejects: output
                .rejects
                .into_iter()
                .map(|r| api::Reject {
                    index: r.index,
                    reason: r.reason,
                    field: r.field,
                })
                .collect(),
        })
    }
}

/// Exports a [`Transform`] implementation as the plugin's `transform` world.
#[macro_export]
macro_rules! export_transform {
    ($ty:ident) => {
        impl $crate::bindings::transform::exports::weft::plugin::transform_api::Guest for $ty {
            fn describe() -> $crate::bindings::transform::exports::weft::plugin::transform_api::TransformInfo {
                $crate::__transform_glue::describe::<$ty>()
            }
            fn output_schema(
                config: ::std::string::String,
                input: ::std::string::String,
                lookup: ::core::option::Option<::std::string::String>,
            ) -> ::core::result::Result<::std::string::String, $crate::bindings::transform::weft::plugin::types::PluginError> {
                $crate::__transform_glue::output_schema::<$ty>(config, input, lookup)
            }
            fn process(
                batch: $crate::bindings::transform::exports::weft::plugin::transform_api::Batch,
            ) -> ::core::result::Result<
                $crate::bindings::transform::exports::weft::plugin::transform_api::BatchResult,
                $crate::bindings::transform::weft::plugin::types::PluginError,
            > {
                $crate::__transform_glue::process::<$ty>(batch)
            }
        }
        $crate::bindings::transform::export_world!($ty with_types_in $crate::bindings::transform);
    };
}
