//! Leader election with a `coordination.k8s.io/v1` Lease: only the holder runs the controller.

use std::sync::Arc;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::controller::{Context, run_controller};

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// Identity of this replica (unique per process).
    pub identity: String,
    /// Lease duration in seconds (a dead leader is replaced after about this long).
    pub duration_seconds: u64,
    /// Renewal grace period in seconds.
    pub grace_seconds: u64,
}

/// Errors of the election loop.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The lease manager failed.
    #[error("lease manager: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The lease manager task ended.
    #[error("the lease manager stopped")]
    Stopped,
}

async fn wait_for(rx: &mut watch::Receiver<bool>, want: bool) -> Result<(), LeaderError> {
    loop {
        if *rx.borrow_and_update() == want {
            return Ok(());
        }
        rx.changed().await.map_err(|_| LeaderError::Stopped)?;
    }
}

/// Runs forever: waits for the Lease, runs the controller while holding it, stops it when the
/// Lease is lost, and waits again. Returns only on error or when `shutdown` resolves.
pub async fn run_with_election(
    client: Client,
    ctx: Arc<Context>,
    namespace: Option<String>,
    lease: LeaseSettings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), LeaderError> {
    let manager = LeaseManagerBuilder::new(client, &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(lease.duration_seconds)
        .with_grace(lease.grace_seconds)
        .with_field_manager(format!("{}-lease", crate::controller::FIELD_MANAGER))
        .build()
        .await?;
    let (mut rx, task) = manager.watch().await;
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            _ = &mut shutdown => break Ok(()),
            r = wait_for(&mut rx, true) => if let Err(e) = r { break Err(e) },
        }
        info!(identity = %lease.identity, lease = %lease.name, "acquired the leader lease; starting the controller");
        ctx.metrics.leader.set(1);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let controller = run_controller(ctx.clone(), namespace.as_deref(), async {
            let _ = stop_rx.await;
        });
        tokio::pin!(controller);
        let lost = tokio::select! {
            _ = &mut shutdown => { let _ = stop_tx.send(()); controller.await; ctx.metrics.leader.set(0); break Ok(()) }
            _ = &mut controller => { ctx.metrics.leader.set(0); break Ok(()) }
            r = wait_for(&mut rx, false) => r,
        };
        // Lease lost: stop reconciling at once (another replica may already lead).
        ctx.metrics.leader.set(0);
        let _ = stop_tx.send(());
        controller.await;
        if let Err(e) = lost {
            break Err(e);
        }
        warn!(identity = %lease.identity, "lost the leader lease; controller stopped");
    };
    // Dropping the receiver makes the manager release the lease.
    drop(rx);
    match task.await {
        Ok(Ok(_)) | Err(_) => {}
        Ok(Err(e)) => warn!(error = %e, "releasing the lease failed"),
    }
    result
}
