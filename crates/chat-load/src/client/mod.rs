//! One simulated user: its connection (a reader task on the connection's IO thread that
//! accounts for every frame; sends written straight into the socket, conn.rs), what it
//! received, and its unread syncs.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::conn::Conn;
use crate::context::Ctx;
use crate::ledger::Inbox;
use crate::protocol::{read_receipt, sync};
use crate::stats::lock;
use crate::target::{DialError, Dialed};
use crate::ws::frame::Decoder;

mod frames;

use frames::handle;

/// First delay before a sync, message or read receipt refused with 5000 is sent again
/// (doubles, jittered).
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Most times one message refused with 5000 is sent again before it counts as failed.
const MESSAGE_RETRIES: u32 = 5;
/// Longest a polite close waits for the server's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A user of the run and its current connection, if any.
pub struct User {
    /// Index in the fleet (also the histogram shard hint).
    pub idx: u32,
    /// The user id in the token.
    pub id: i64,
    /// What this user received, across reconnections.
    pub inbox: Mutex<Inbox>,
    /// Messages sent on the current connection and not yet acknowledged or refused.
    pub inflight: AtomicU32,
    link: Mutex<Option<Link>>,
    online: AtomicBool,
    /// Numbers connections, so a late end of an old one does not touch the new one.
    generation: AtomicU64,
    /// Woken by the final 2200 of an unread sync.
    synced: Notify,
    /// Whether an unread sync is under way (a 5000 then means: retry it).
    syncing: AtomicBool,
    /// Retries of the current sync, for its backoff.
    sync_retries: AtomicU32,
    /// Read receipts (message ids) sent at the end of the run, to send again on a 5000.
    receipts: Mutex<Vec<String>>,
    /// Times the receipts were sent again.
    receipt_retries: AtomicU32,
}

struct Link {
    conn: Arc<Conn>,
    reader: AbortHandle,
    generation: u64,
}

impl User {
    /// A user, not connected.
    pub fn new(idx: u32, id: i64) -> User {
        User {
            idx,
            id,
            inbox: Mutex::default(),
            inflight: AtomicU32::new(0),
            link: Mutex::new(None),
            online: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            synced: Notify::new(),
            syncing: AtomicBool::new(false),
            sync_retries: AtomicU32::new(0),
            receipts: Mutex::default(),
            receipt_retries: AtomicU32::new(0),
        }
    }

    /// Whether the user has an open connection.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Connects (recording the handshake time or the failure's cause) and starts the
    /// connection's reader, all on the user's IO thread.
    pub async fn connect(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<(), String> {
        let (user, on_shard) = (self.clone(), ctx.clone());
        ctx.shard(self.idx)
            .spawn(async move { user.connect_here(&on_shard).await })
            .await
            .unwrap_or_else(|_| Err("the IO thread stopped".into()))
    }

    /// `connect`, on the IO thread the connection is to live on.
    async fn connect_here(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<(), String> {
        let token = ctx.tokens.mint(self.id);
        let started = Instant::now();
        // Each simulated user is one device, with its own catch-up (docs/protocol.md).
        let device = format!("load-{}", self.id);
        let ws = match ctx.dialer.dial(&token, &device).await {
            Ok(ws) => ws,
            Err(e) => {
                let cause = DialError::cause(&e);
                ctx.stats.connect_failures.inc(cause.clone());
                return Err(cause);
            }
        };
        ctx.stats
            .handshake
            .record(self.idx as usize, started.elapsed().as_micros() as u64);
        ctx.stats.connected.inc();
        self.attach(ctx, ws);
        Ok(())
    }

    fn attach(self: &Arc<Self>, ctx: &Arc<Ctx>, ws: Dialed) {
        let Dialed {
            stream,
            tls,
            decoder,
            leftover,
        } = ws;
        let conn = Arc::new(Conn::new(stream, tls));
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // The link is in place before the reader can end, so its end always finds it.
        let mut link = lock(&self.link);
        if let Some(old) = link.take() {
            old.abort();
            ctx.stats.closed();
        }
        let reader = tokio::spawn(read_loop(
            ctx.clone(),
            self.clone(),
            conn.clone(),
            (decoder, leftover),
            generation,
        ))
        .abort_handle();
        *link = Some(Link {
            conn,
            reader,
            generation,
        });
        self.inflight.store(0, Ordering::Relaxed);
        self.online.store(true, Ordering::Relaxed);
        ctx.stats.opened();
    }

    /// Sends a text frame (written at once when the socket takes it, else queued behind
    /// what it has not taken yet); false when the user is offline.
    pub fn send(&self, text: String) -> bool {
        match &*lock(&self.link) {
            Some(link) => link.conn.send_text(&text),
            None => false,
        }
    }

    /// Drops the connection at once, as a network failure would (the server sees the socket
    /// close). Unacknowledged messages are counted as such.
    pub fn drop_connection(&self, ctx: &Ctx) {
        if let Some(link) = lock(&self.link).take() {
            link.abort();
            self.went_offline(ctx);
        }
    }

    /// Closes the connection politely: a close frame, then the socket once the server's
    /// close frame came back (or after `CLOSE_WAIT`).
    pub fn close(&self, ctx: &Ctx) {
        if let Some(link) = lock(&self.link).take() {
            link.conn.send_close();
            // The reader ends on the answer; the socket closes with the reader.
            let reader = link.reader;
            link.conn.shard().spawn(async move {
                tokio::time::sleep(CLOSE_WAIT).await;
                reader.abort();
            });
            self.went_offline(ctx);
        }
    }

    fn went_offline(&self, ctx: &Ctx) {
        self.online.store(false, Ordering::Relaxed);
        // A sync under way died with the connection: its waiter learns it now.
        self.syncing.store(false, Ordering::Relaxed);
        self.synced.notify_waiters();
        ctx.stats
            .unacked
            .add(u64::from(self.inflight.swap(0, Ordering::Relaxed)));
        ctx.stats.closed();
    }

    /// Sends unread syncs (type 2) until the last page; whether it completed in `timeout`
    /// (false too when the connection ended first).
    pub async fn sync(&self, timeout: Duration) -> bool {
        let synced = self.synced.notified();
        tokio::pin!(synced);
        synced.as_mut().enable();
        if !self.start_sync() {
            return false;
        }
        tokio::time::timeout(timeout, synced).await.is_ok() && self.is_online()
    }

    /// Sends the first page request of a sync.
    fn start_sync(&self) -> bool {
        self.syncing.store(true, Ordering::Relaxed);
        self.sync_retries.store(0, Ordering::Relaxed);
        self.send(sync())
    }

    /// The server could not serve the sync (5000): asks again after a backoff, as a client
    /// should; whether it will.
    fn retry_sync(self: &Arc<Self>) -> bool {
        if !self.syncing.load(Ordering::Relaxed) {
            return false;
        }
        let attempt = self.sync_retries.fetch_add(1, Ordering::Relaxed).min(5);
        let delay = crate::backoff::jitter(RETRY_DELAY.saturating_mul(1 << attempt));
        let user = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            user.send(sync());
        });
        true
    }

    /// Sends a read receipt (type 5) for each id; how many went out.
    pub fn send_receipts(&self, ids: Vec<String>) -> u64 {
        let sent = ids.iter().filter(|id| self.send(read_receipt(id))).count();
        *lock(&self.receipts) = ids;
        sent as u64
    }

    /// The server could not apply a read receipt (5000, which does not say which): sends
    /// them all again after a backoff (they are idempotent); whether it will.
    fn retry_receipts(self: &Arc<Self>) -> bool {
        if lock(&self.receipts).is_empty() {
            return false;
        }
        let attempt = self.receipt_retries.fetch_add(1, Ordering::Relaxed);
        if attempt >= MESSAGE_RETRIES {
            return false;
        }
        let delay = crate::backoff::jitter(RETRY_DELAY.saturating_mul(1 << attempt));
        let user = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let ids = lock(&user.receipts).clone();
            for id in ids {
                user.send(read_receipt(&id));
            }
        });
        true
    }

    /// The connection ended on its own (server close, error, EOF).
    fn ended(&self, ctx: &Ctx, generation: u64) {
        let mut link = lock(&self.link);
        if link.as_ref().is_some_and(|l| l.generation == generation) {
            if let Some(link) = link.take() {
                link.conn.abort_writer();
            }
            drop(link);
            self.went_offline(ctx);
            ctx.stats.server_disconnects.inc();
            ctx.report_disconnect(self.idx);
        }
    }
}

impl Link {
    fn abort(self) {
        self.reader.abort();
        self.conn.abort_writer();
    }
}

/// Counts a reader task while it lives, even when it is aborted.
struct Alive(Arc<Ctx>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.stats.readers.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn read_loop(
    ctx: Arc<Ctx>,
    user: Arc<User>,
    conn: Arc<Conn>,
    (decoder, leftover): (Decoder, Vec<u8>),
    generation: u64,
) {
    ctx.stats.readers.fetch_add(1, Ordering::Relaxed);
    let _alive = Alive(ctx.clone());
    // The reader ends on the server's close frame (answered), EOF, or an error.
    conn.read(decoder, leftover, |text| handle(&ctx, &user, text))
        .await;
    user.ended(&ctx, generation);
}
