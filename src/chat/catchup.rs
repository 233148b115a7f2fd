//! Per-device catch-up: where a connection's unread syncs have got to, and up to which
//! message its device confirmed receiving what it was owed.
//!
//! Ids are made by the storing node before its batch commits, so a message can become
//! visible after another with a higher id was already sent (another node's batch committed
//! first, or its clock runs ahead). Every sync therefore reads again from
//! `chat.catchup_overlap` before the newest id the connection has sent, leaving out the ids
//! it sent in that window: a message stored late is sent by the next sync, never skipped.
//!
//! A message is owed to a device while it is unread by the user and newer than the device's
//! confirmed position (docs/protocol.md, "Catch-up"). Syncs read and never write: repeated
//! syncs on one connection page forward from where the last one ended, and a new connection
//! of the device starts again from its confirmed position (less `chat.catchup_overlap`), so
//! a page whose reply was lost comes back. A confirmation (type 9) counts only as far as the
//! connection's syncs have sent: never past a message the device may not have (a live push
//! is at most once, and a sender whose publish failed tells no other node). Positions are
//! written at most once per
//! `chat.confirm_interval` and when the connection ends: a position lost with its node only
//! makes the device receive messages again.

use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::ids::{DeviceId, UserId};
use crate::store::{Store, StoreError};

/// Ids a connection remembers having sent within the overlap window; past this many (a flood
/// of unread messages), the oldest are forgotten and may be sent again (repeats, not gaps).
const RECENT_MAX: usize = 4096;

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
    /// The newest id this connection's syncs sent (or, before the first page, the device's
    /// confirmed position); `None` until the first sync loads it, `Some(None)` from the
    /// oldest unread message.
    cursor: Option<Option<Uuid>>,
    /// The ids this connection's syncs sent within the overlap before `cursor`.
    recent: BTreeSet<Uuid>,
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

    /// Where the next sync reads from (exclusive: `overlap` before the cursor, which the
    /// first sync loads from the device's position) and the ids to leave out (sent already).
    pub(crate) async fn sync_start(
        &self,
        overlap: Duration,
    ) -> Result<(Option<Uuid>, Vec<Uuid>), StoreError> {
        let loaded = self.progress.lock().cursor;
        let cursor = match loaded {
            Some(cursor) => cursor,
            None => {
                let position = match &self.device {
                    Some(device) => self.store.device_position(self.user, device).await?,
                    None => None,
                };
                *self.progress.lock().cursor.get_or_insert(position)
            }
        };
        let floor = cursor.map(|c| overlap_floor(c, overlap));
        let recent = self.progress.lock().recent.iter().copied().collect();
        Ok((floor, recent))
    }

    /// A sync page sent `ids`: the cursor moves to the newest, and the ids within `overlap`
    /// of it are remembered.
    pub(crate) fn page_sent(&self, ids: &[Uuid], overlap: Duration) {
        let mut progress = self.progress.lock();
        let newest = ids.iter().max().copied();
        let cursor = progress.cursor.flatten().max(newest);
        progress.cursor = Some(cursor);
        progress.recent.extend(ids.iter().copied());
        if let Some(cursor) = cursor {
            let floor = overlap_floor(cursor, overlap);
            progress.recent = progress.recent.split_off(&floor);
        }
        while progress.recent.len() > RECENT_MAX {
            progress.recent.pop_first();
        }
    }

    /// Takes a confirmation of `id`, counting it only as far as this connection's syncs have
    /// sent.
    pub(crate) fn confirm(&self, id: Uuid) -> Confirmed {
        let mut progress = self.progress.lock();
        let vouched = progress.cursor.flatten().map(|cursor| cursor.min(id));
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
