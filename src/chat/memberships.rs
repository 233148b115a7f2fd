//! Membership reconciliation: after the bus link comes back (a resync), this node's view of
//! which local users belong to which groups is reloaded from the store, since the control
//! messages announcing changes during the gap are lost with it. Only then are clients told
//! to sync (1002), so a sync never races a group that is not live yet.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::ids::{GroupId, UserId};
use crate::state::AppState;

/// How long a reload may take before the clients are told to sync anyway (a store outage
/// must not withhold the 1002).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Reloads memberships after every resync until the node stops. Spawned once per node.
pub async fn reconcile(state: AppState) {
    loop {
        tokio::select! {
            () = state.hub.resynced() => {}
            () = state.shutdown.cancelled() => return,
        }
        match tokio::time::timeout(RELOAD_TIMEOUT, reload(&state)).await {
            Ok(Ok(changed)) => {
                tracing::info!(changed, "memberships reloaded after the bus came back")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "memberships not reloaded"),
            Err(_) => tracing::warn!("memberships not reloaded in time"),
        }
        state.metrics.membership_reloads.inc();
        state.hub.sync_needed();
    }
}

/// Reloads the groups of every local user; how many users were looked up.
async fn reload(state: &AppState) -> Result<usize, crate::store::StoreError> {
    let users = state.hub.local_users();
    let found = state.store.memberships(&users).await?;
    let mut groups: HashMap<UserId, HashSet<GroupId>> =
        users.iter().map(|u| (*u, HashSet::new())).collect();
    for (user, group) in found {
        groups.entry(user).or_default().insert(group);
    }
    let count = groups.len();
    for (user, groups) in groups {
        state.hub.set_groups(user, groups);
    }
    Ok(count)
}
