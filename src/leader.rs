//! Leader election through a Lease (coordination.k8s.io): a standby waits for the
//! Lease, the leader holds and renews it, and a leader that is stopped hands it over so
//! that a standby takes over at once. Does IO (the Lease).

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which Lease, and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's name in the Lease (the pod's name).
    pub identity: String,
    /// Seconds a leader holds the lease without renewing it.
    pub duration_seconds: u64,
}

/// This replica holds the Lease (and renews it) until [`Leadership::release`].
pub struct Leadership {
    leader: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
    lease_name: String,
    identity: String,
}

/// How long a freshly started lease manager gets to take a free Lease by itself before
/// the standby's own watch of the Lease starts it again.
const SETTLE: Duration = Duration::from_secs(1);

impl LeaderElection {
    async fn manager(&self, client: &Client) -> std::io::Result<LeaseManager> {
        LeaseManagerBuilder::new(client.clone(), &self.lease_name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_seconds)
            .with_grace((self.duration_seconds / 3).max(1))
            .build()
            .await
            .map_err(std::io::Error::other)
    }

    /// Waits until this replica holds the Lease; `None` when stopped (SIGTERM or
    /// Ctrl-C) first.
    ///
    /// The lease manager, while another replica holds the Lease, sleeps until that
    /// replica's lease would expire: it would not see a Lease handed over early. So the
    /// standby also watches the Lease, and when it is free starts the manager again,
    /// which takes it at once.
    pub async fn acquire(&self, client: &Client) -> std::io::Result<Option<Leadership>> {
        enum Outcome {
            Became,
            ManagerStopped,
            Free,
            Stopped,
        }
        let leases: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        tracing::info!(lease = %self.lease_name, namespace = %self.namespace, identity = %self.identity, "standby: waiting to become the leader");
        let mut free_rounds: u32 = 0;
        loop {
            let (mut leader, task) = self.manager(client).await?.watch().await;
            let outcome = tokio::select! {
                became = async {
                    while !*leader.borrow_and_update() {
                        if leader.changed().await.is_err() {
                            return false;
                        }
                    }
                    true
                } => if became { Outcome::Became } else { Outcome::ManagerStopped },
                () = free(&leases, &self.lease_name) => Outcome::Free,
                () = shutdown_signal() => Outcome::Stopped,
            };
            match outcome {
                Outcome::Became => {
                    tracing::info!(identity = %self.identity, "became the leader");
                    return Ok(Some(Leadership {
                        leader,
                        task,
                        lease_name: self.lease_name.clone(),
                        identity: self.identity.clone(),
                    }));
                }
                Outcome::ManagerStopped => {
                    let error = match task.await {
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(_)) => "stopped".to_string(),
                        Err(e) => e.to_string(),
                    };
                    return Err(std::io::Error::other(format!(
                        "the lease manager stopped: {error}"
                    )));
                }
                Outcome::Free => {
                    // Not dropped but aborted: dropping would have it release a Lease it
                    // may have just taken. A Lease it took is held under this replica's
                    // identity, which the next manager recognises as its own.
                    task.abort();
                    let _ = task.await;
                    tracing::debug!(lease = %self.lease_name, "the Lease is free: taking it");
                    // A free Lease the manager keeps not taking: back off, up to the
                    // lease duration, rather than rebuild it every second.
                    free_rounds += 1;
                    if free_rounds > 3 {
                        tracing::warn!(lease = %self.lease_name, rounds = free_rounds, "the Lease stays free but is not taken; retrying");
                        let wait = Duration::from_secs(u64::from(free_rounds))
                            .min(Duration::from_secs(self.duration_seconds.max(1)));
                        tokio::time::sleep(wait).await;
                    }
                }
                Outcome::Stopped => {
                    drop(leader);
                    let _ = task.await;
                    return Ok(None);
                }
            }
        }
    }
}

impl Leadership {
    /// Resolves when this replica no longer holds the Lease.
    pub async fn lost(&mut self) {
        loop {
            if self.leader.changed().await.is_err() || !*self.leader.borrow_and_update() {
                return;
            }
        }
    }

    /// Hands the Lease over (clears its holder), so that a standby takes over at once
    /// instead of after the lease duration. Call it only once nothing acts any more.
    pub async fn release(self) {
        drop(self.leader);
        match self.task.await {
            Ok(Ok(_)) => {
                tracing::info!(lease = %self.lease_name, identity = %self.identity, "released the Lease")
            }
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.lease_name, error = %e, "could not release the Lease; a standby takes over when it expires")
            }
            Err(e) => {
                tracing::warn!(lease = %self.lease_name, error = %e, "could not release the Lease; a standby takes over when it expires")
            }
        }
    }
}

/// Resolves once the Lease is seen without a holder (handed over), after [`SETTLE`].
async fn free(leases: &Api<Lease>, name: &str) {
    tokio::time::sleep(SETTLE).await;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut leases = std::pin::pin!(
        watcher(leases.clone(), config)
            .default_backoff()
            .applied_objects()
    );
    while let Some(event) = leases.next().await {
        let Ok(lease) = event else { continue };
        let holder = lease.spec.and_then(|s| s.holder_identity);
        if holder.is_none_or(|h| h.is_empty()) {
            return;
        }
    }
    std::future::pending().await
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
