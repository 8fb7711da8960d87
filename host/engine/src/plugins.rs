//! The seam between the engine and plugins: what a run asks of a connection's connector and of
//! a transform. The wasm plugins of `weft-runtime` implement it; so can anything else that
//! reads pages and writes batches (an in-memory connector in the engine's own tests), so the
//! run loop is tested without WebAssembly.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;
use weft_runtime::{
    Batch, BatchResult, CallContext, CallError, ConnectorPlugin, Page, ReadRequest,
    TransformPlugin, WriteOutcome, WriteRequest,
};

/// A call in progress.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send + 'a>>;

/// What a run asks of a connection's connector: pages of a stream, batches written.
pub trait Connector: Send + Sync {
    /// One page of `request.stream` from `request.cursor` on.
    fn read<'a>(
        &'a self,
        context: &'a CallContext,
        connection: &'a str,
        config: &'a Value,
        request: ReadRequest,
    ) -> Call<'a, Page>;

    /// Writes a batch of `records` records; one outcome per record, in order.
    fn write<'a>(
        &'a self,
        context: &'a CallContext,
        connection: &'a str,
        config: &'a Value,
        request: WriteRequest,
        records: usize,
    ) -> Call<'a, Vec<WriteOutcome>>;
}

/// What a run asks of a transform (and of the filter evaluating conditions): a batch in, its
/// records and rejects out.
pub trait Transformer: Send + Sync {
    fn process<'a>(&'a self, context: &'a CallContext, batch: Batch) -> Call<'a, BatchResult>;
}

impl Connector for ConnectorPlugin {
    fn read<'a>(
        &'a self,
        context: &'a CallContext,
        connection: &'a str,
        config: &'a Value,
        request: ReadRequest,
    ) -> Call<'a, Page> {
        Box::pin(ConnectorPlugin::read(
            self, context, connection, config, request,
        ))
    }

    fn write<'a>(
        &'a self,
        context: &'a CallContext,
        connection: &'a str,
        config: &'a Value,
        request: WriteRequest,
        records: usize,
    ) -> Call<'a, Vec<WriteOutcome>> {
        Box::pin(ConnectorPlugin::write(
            self, context, connection, config, request, records,
        ))
    }
}

impl Transformer for TransformPlugin {
    fn process<'a>(&'a self, context: &'a CallContext, batch: Batch) -> Call<'a, BatchResult> {
        Box::pin(TransformPlugin::process(self, context, batch))
    }
}
