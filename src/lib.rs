//! dbsnapshot-operator: declare AWS database snapshots as Kubernetes objects.

pub mod api;
pub mod engine;
pub mod lifecycle;
pub mod naming;
