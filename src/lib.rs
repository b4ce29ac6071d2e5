//! dbsnapshot-operator: declare AWS database snapshots as Kubernetes objects.
