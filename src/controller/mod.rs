//! The controllers' shared context, errors, retry policy, finalizer and status writing.
//! Does IO (Kubernetes and, through the engines, AWS).

pub mod aws_account;
pub mod cluster_snapshot;
mod context;
pub mod drive;
mod error;
mod finalizer;
mod gauges;
pub mod poller;
mod run;
pub mod snapshot_copy;
pub mod snapshot_schedule;
mod status;
mod turns;

pub use context::{Context, Look};
pub use error::{Error, backoff, error_policy};
pub use finalizer::{ensure_finalizer, finish_cleanup, remove_finalizer};
pub use run::{PER_OBJECT_POLL, Polling, Settings, run};
pub(crate) use status::write_status_announcing;
pub use status::{
    WithStatus, account_problem, invalid_spec, record, recorded, report_forbidden, with_health,
    write_status,
};
pub use turns::{Turns, action, controller_config, reconcile_object, reconcile_plain};
