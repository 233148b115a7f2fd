//! Per-device catch-up: where a connection's unread syncs have got to, and up to which
//! message its device confirmed receiving what it was owed.
//!
//! A message is owed to a device while it is unread by the user and newer than the device's
//! confirmed position (docs/protocol.md, "Catch-up"). Syncs read and never write: repeated
//! syncs on one connection page forward from where the last one ended, and a new connection
//! of the device starts again from its confirmed position (less `chat.catchup_overlap`), so
//! a page whose reply was lost comes back. A confirmation (type 9) counts only as far as the
//! connection can vouch for: the pages its syncs sent, and, once a sync has reached the end
//! with no 1002 since, whatever it received live. Positions are written at most once per
//! `chat.confirm_interval` and when the connection ends: a position lost with its node only
//! makes the device receive messages again.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::ids::{DeviceId, UserId};
use crate::store::{Store, StoreError};

/// How long the end of a connection may spend writing its device's position.
const LAST_WRITE: Duration = Duration::from_secs(2);

/// One connection's catch-up.
pub(crate) struct CatchUp {
    store: Arc<dyn Store>,
    user: UserId,
    device: Option<DeviceId>,
    /// `chat.max_device_positions`.
    keep: usize,
    /// `chat.confirm_interval`.
    interval: Duration,
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    /// Where this connection's next sync starts (exclusive); `None` until the first sync
    /// has loaded the device's position, `Some(None)` from the oldest unread message.
    after: Option<Option<Uuid>>,
    /// The hub's resync count when a sync of this connection last reached the end.
    caught_up: Option<u64>,
    /// The highest position this connection's confirmations reached…
    confirmed: Option<Uuid>,
    /// …and the highest written to the store.
    written: Option<Uuid>,
    last_write: Option<Instant>,
    /// A task will write `confirmed` when the interval has passed.
    write_scheduled: bool,
}

/// What a confirmation did.
pub(crate) struct Confirmed {
    /// How far the device's position now reaches (as far as this connection knows).
    pub position: Option<Uuid>,
    /// Write it now (the interval has passed since the last write).
    pub write_now: bool,
    /// Write it later: a task must be started (`schedule_write`).
    pub write_later: bool,
}

impl CatchUp {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        user: UserId,
        device: Option<DeviceId>,
        keep: usize,
        interval: Duration,
    ) -> Arc<CatchUp> {
        Arc::new(CatchUp {
            store,
            user,
            device,
            keep,
            interval,
            progress: Mutex::default(),
        })
    }

    /// The connection's device, if it named one.
    pub(crate) fn device(&self) -> Option<&DeviceId> {
        self.device.as_ref()
    }

    /// Where the next sync starts: loaded from the device's position (less `overlap`) on the
    /// first sync of the connection.
    pub(crate) async fn sync_start(&self, overlap: Duration) -> Result<Option<Uuid>, StoreError> {
        if let Some(after) = self.progress.lock().after {
            return Ok(after);
        }
        let after = match &self.device {
            Some(device) => self
                .store
                .device_position(self.user, device)
                .await?
                .map(|position| overlap_floor(position, overlap)),
            None => None,
        };
        let mut progress = self.progress.lock();
        Ok(*progress.after.get_or_insert(after))
    }

    /// A sync page went out: the next starts after `last`; `ended` (nothing more owed) at
    /// resync count `epoch` makes the connection caught up.
    pub(crate) fn page_sent(&self, last: Option<Uuid>, ended: bool, epoch: u64) {
        let mut progress = self.progress.lock();
        if let Some(last) = last {
            progress.after = Some(Some(last));
        }
        if ended {
            progress.caught_up = Some(epoch);
        }
    }

    /// Takes a confirmation of `id` at resync count `epoch`, counting it only as far as the
    /// connection can vouch for.
    pub(crate) fn confirm(&self, id: Uuid, epoch: u64) -> Confirmed {
        let mut progress = self.progress.lock();
        let vouched = if progress.caught_up == Some(epoch) {
            Some(id)
        } else {
            progress.after.flatten().map(|after| after.min(id))
        };
        if vouched > progress.confirmed {
            progress.confirmed = vouched;
        }
        let pending = progress.confirmed > progress.written;
        let due = progress
            .last_write
            .is_none_or(|at| at.elapsed() >= self.interval);
        let write_now = pending && due;
        let write_later = pending && !due && !progress.write_scheduled;
        if write_later {
            progress.write_scheduled = true;
        }
        Confirmed {
            position: progress.confirmed.max(progress.written),
            write_now,
            write_later,
        }
    }

    /// Writes the confirmed position if it moved since the last write.
    pub(crate) async fn write(&self) -> Result<(), StoreError> {
        let (Some(device), Some(id)) = (&self.device, {
            let mut progress = self.progress.lock();
            progress.last_write = Some(Instant::now());
            progress.write_scheduled = false;
            (progress.confirmed > progress.written)
                .then_some(progress.confirmed)
                .flatten()
        }) else {
            return Ok(());
        };
        self.store
            .confirm_delivery(self.user, device, id, self.keep)
            .await?;
        let mut progress = self.progress.lock();
        if Some(id) > progress.written {
            progress.written = Some(id);
        }
        Ok(())
    }

    /// Writes the position once the interval since the last write has passed.
    pub(crate) fn schedule_write(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(me.interval).await;
            if let Err(e) = me.write().await {
                tracing::warn!(error = %e, "device position not written");
            }
        });
    }

    /// The connection ended: writes what is still unwritten, briefly.
    pub(crate) async fn finish(&self) {
        match tokio::time::timeout(LAST_WRITE, self.write()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "device position not written"),
            Err(_) => tracing::warn!("device position not written in time"),
        }
    }
}

/// The smallest id of the millisecond `overlap` before `position`'s.
fn overlap_floor(position: Uuid, overlap: Duration) -> Uuid {
    if overlap.is_zero() {
        return position;
    }
    let ms = crate::ids::millis_of(&position) as u64;
    let floor = ms.saturating_sub(overlap.as_millis() as u64);
    crate::protocol::Cursor::at_millis(floor).0.min(position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlap_reaches_back_in_time_only() {
        let id = Uuid::now_v7();
        let floor = overlap_floor(id, Duration::from_secs(5));
        assert!(floor < id);
        let ms = crate::ids::millis_of(&id) - crate::ids::millis_of(&floor);
        assert_eq!(ms, 5000);
        assert_eq!(overlap_floor(id, Duration::ZERO), id);
    }
}
