//! dbsnapshot-operator: declare AWS database snapshots as Kubernetes objects.

pub mod api;
pub mod controller;
pub mod engine;
pub mod leader;
pub mod lifecycle;
pub mod metrics;
pub mod naming;
pub mod schedule;
pub mod shard;
