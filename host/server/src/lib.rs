//! Serving flows: what `weft serve` is, as a library the binary only configures and prints.
//!
//! A [`Server`] holds a tenant's [`ServedFlow`]s, each checked and planned at start by
//! [`load`] (a broken flow stops the server before anything runs). Its loop ([`Server::run`],
//! one turn of it [`Server::tick`]) runs:
//!
//! - **scheduled flows**: one that never ran starts at once (the full sync), then follows its
//!   `every` or `cron` schedule;
//! - **job chains**: a flow with `after = [...]` runs once every flow it names has completed
//!   since its own last run;
//! - **webhook-triggered flows**, over the events their endpoints (`POST /hooks/{flow}` for
//!   the flows directory's, `POST /hooks/{endpoint}` with an unguessable id for deployed ones;
//!   [`Server::router`] or [`Server::listen`]) verified and stored before their sender got its
//!   2xx;
//! - **registrations**: with a public URL, each webhook flow's endpoint is registered with its
//!   vendor and kept registered (see [`registration`]);
//! - with [`Server::with_deployed`], the flows tenants deploy through the API, and the runs,
//!   retries and cancels asked for through it.
//!
//! Runs of one flow never overlap, also across processes sharing the store. Nothing that fails
//! stops the server: a flow whose turn fails is told of ([`Event::Deferred`]) and rests, with
//! backoff, while the others go on. A turn looks only at the flows due (see `agenda`): an idle
//! flow costs no store query and no work a turn, and runs waiting for a worker are kept, not
//! found again. Runs are watched between pages (see `watch`): a cancel or a quota stops one
//! after its current page.

mod agenda;
mod deployed;
mod dispatch;
mod flows;
mod hooks;
mod intake;
pub mod metrics;
mod plugins;
pub mod quota;
pub mod registration;
mod server;
mod watch;

pub use flows::{
    Deployment, FlowKey, LoadError, LoadOptions, Problems, ServedFlow, TenantPolicy, load,
    plan_deployed,
};
pub use metrics::Metrics;
pub use plugins::TenantPlugins;
pub use quota::{Quota, Quotas};
pub use registration::{Registration, RegistrationError};
pub use server::{
    Cause, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WORKERS, Event, RunEnded, ServeError, Server,
};
