//! Running flows: binding a checked flow file to its plugins ([`plan`]) and executing the plan
//! ([`run`](run::run)) with checkpoints, retries and an error log.

pub mod check;
pub mod datasets;
mod lease;
pub mod plan;
pub mod plugins;
pub mod registry;
pub mod run;
pub mod schedule;

pub use check::{ConnectionStatus, TokenState, check_connections};
pub use datasets::Datasets;
pub use lease::DEFAULT_LEASE;
pub use plan::{BoundConnection, Plan, PlanOptions, PlannedStep, Work, plan, plan_with};
pub use plugins::{Connector, Transformer};
pub use registry::PluginDirectory;
pub use run::{
    Halt, Progress, RetryPolicy, RunError, RunOptions, RunReport, Watch, dataset_key, retry_failed,
    run, run_id_new, run_with_events,
};
