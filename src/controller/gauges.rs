//! The gauges read off the caches every few seconds: objects by kind, engine and phase,
//! the Stalled objects, the newest Ready snapshot of each source, and the schedules'.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::WithStatus;
use crate::api::conditions::{READY, STALLED};
use crate::api::{ClusterSnapshot, SnapshotCopy, SnapshotSchedule, SnapshotStatus};
use crate::metrics::{
    Metrics, ObjectLabels, ScheduleLabels, ScheduleState, SourceLabels, StalledLabels,
};

/// How often the gauges are refreshed.
const EVERY: Duration = Duration::from_secs(5);

/// Refreshes the gauges from the caches every few seconds, for as long as the process
/// runs.
pub fn spawn(
    snapshots: Store<ClusterSnapshot>,
    copies: Store<SnapshotCopy>,
    schedules: Store<SnapshotSchedule>,
    metrics: Arc<Metrics>,
) {
    tokio::spawn(async move {
        loop {
            let objects: Vec<Snapshot> = snapshots
                .state()
                .iter()
                .map(|o| Snapshot::of("ClusterSnapshot", &**o))
                .chain(
                    copies
                        .state()
                        .iter()
                        .map(|o| Snapshot::of("SnapshotCopy", &**o)),
                )
                .collect();
            let schedules = schedules.state();
            let g = gauges(&objects, schedules.iter().map(|s| &**s));
            metrics.set_objects(&g.objects);
            metrics.set_stalled(&g.stalled);
            metrics.set_last_ready(&g.last_ready);
            metrics.set_schedules(&g.schedules);
            tokio::time::sleep(EVERY).await;
        }
    });
}

/// What the gauges need of a ClusterSnapshot or SnapshotCopy.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub status: SnapshotStatus,
}

impl Snapshot {
    pub fn of<K: ResourceExt + WithStatus>(kind: &'static str, obj: &K) -> Self {
        Snapshot {
            kind,
            namespace: obj.namespace().unwrap_or_default(),
            name: obj.name_any(),
            status: obj.snapshot_status(),
        }
    }
}

/// The gauges' values.
#[derive(Debug, Default)]
pub struct Gauges {
    pub objects: HashMap<ObjectLabels, i64>,
    pub stalled: HashSet<StalledLabels>,
    pub last_ready: HashMap<SourceLabels, f64>,
    pub schedules: HashMap<ScheduleLabels, ScheduleState>,
}

fn stalled(conditions: &[Condition]) -> Option<&Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == STALLED && c.status == "True")
}

fn seconds(t: k8s_openapi::jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

/// The gauges for these objects. Pure.
pub fn gauges<'a>(
    objects: &[Snapshot],
    schedules: impl IntoIterator<Item = &'a SnapshotSchedule>,
) -> Gauges {
    let mut g = Gauges::default();
    for o in objects {
        let status = &o.status;
        let labels = ObjectLabels {
            kind: o.kind.to_string(),
            engine: status
                .engine
                .map_or("unknown".to_string(), |e| e.to_string()),
            phase: status
                .phase
                .map_or("Pending".to_string(), |p| format!("{p:?}")),
        };
        *g.objects.entry(labels).or_insert(0) += 1;
        if let Some(c) = stalled(&status.conditions) {
            g.stalled.insert(StalledLabels {
                namespace: o.namespace.clone(),
                kind: o.kind.to_string(),
                name: o.name.clone(),
                reason: c.reason.clone(),
            });
        }
        let ready = status
            .condition(READY)
            .filter(|c| c.status == "True" && status.ready_to_use == Some(true));
        if let (Some(ready), Some(source)) = (ready, &status.source) {
            // When the snapshot was taken, as AWS says; else when it became Ready.
            let taken = status
                .creation_time
                .as_deref()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .unwrap_or(ready.last_transition_time.0);
            let newest = g
                .last_ready
                .entry(SourceLabels {
                    namespace: o.namespace.clone(),
                    kind: o.kind.to_string(),
                    source: source.clone(),
                })
                .or_insert(f64::MIN);
            *newest = newest.max(seconds(taken));
        }
    }
    for s in schedules {
        let status = s.status.clone().unwrap_or_default();
        let namespace = s.namespace().unwrap_or_default();
        if let Some(c) = stalled(&status.conditions) {
            g.stalled.insert(StalledLabels {
                namespace: namespace.clone(),
                kind: "SnapshotSchedule".to_string(),
                name: s.name_any(),
                reason: c.reason.clone(),
            });
        }
        g.schedules.insert(
            ScheduleLabels {
                namespace,
                schedule: s.name_any(),
            },
            ScheduleState {
                last_success: status.last_successful_time.map(seconds),
                snapshots: status.snapshots,
            },
        );
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{Health, conditions, reasons};
    use crate::api::{Engine, Phase};
    use k8s_openapi::jiff::Timestamp;

    fn snapshot(name: &str, source: &str, health: &Health, created: Option<&str>) -> Snapshot {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let ready = matches!(health, Health::Ready { .. });
        Snapshot {
            kind: "ClusterSnapshot",
            namespace: "data".to_string(),
            name: name.to_string(),
            status: SnapshotStatus {
                engine: Some(Engine::Redshift),
                phase: Some(if ready {
                    Phase::Available
                } else {
                    Phase::Pending
                }),
                ready_to_use: Some(ready),
                source: Some(source.to_string()),
                creation_time: created.map(str::to_string),
                conditions: conditions(&[], health, Some(1), now),
                ..Default::default()
            },
        }
    }

    #[test]
    fn stalled_objects_and_the_newest_ready_snapshot_per_source() {
        let objects = [
            snapshot(
                "old",
                "analytics",
                &Health::ready("ok"),
                Some("2026-11-01T03:00:00Z"),
            ),
            snapshot(
                "new",
                "analytics",
                &Health::ready("ok"),
                Some("2026-11-02T03:00:00Z"),
            ),
            snapshot("no-time", "orders", &Health::ready("ok"), None),
            snapshot(
                "denied",
                "analytics",
                &Health::stalled(reasons::AWS_ERROR, "AccessDenied"),
                None,
            ),
            snapshot(
                "creating",
                "sessions",
                &Health::progressing(reasons::CREATING, "1%"),
                None,
            ),
        ];
        let g = gauges(&objects, []);
        let key = |source: &str| SourceLabels {
            namespace: "data".to_string(),
            kind: "ClusterSnapshot".to_string(),
            source: source.to_string(),
        };
        let nov2: Timestamp = "2026-11-02T03:00:00Z".parse().unwrap();
        assert_eq!(g.last_ready[&key("analytics")], seconds(nov2));
        // No creation time from AWS: when it became Ready.
        assert_eq!(g.last_ready[&key("orders")], 1_800_000_000.0);
        // Nothing Ready of this source: no series.
        assert!(!g.last_ready.contains_key(&key("sessions")));
        assert_eq!(
            g.stalled,
            [StalledLabels {
                namespace: "data".to_string(),
                kind: "ClusterSnapshot".to_string(),
                name: "denied".to_string(),
                reason: "AWSError".to_string(),
            }]
            .into_iter()
            .collect()
        );
        let available = ObjectLabels {
            kind: "ClusterSnapshot".to_string(),
            engine: "redshift".to_string(),
            phase: "Available".to_string(),
        };
        assert_eq!(g.objects[&available], 3);
    }
}
