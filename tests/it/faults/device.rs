//! One client device of the fault suite, written as a careful app would be: it names its
//! device, catches up after every connect, every 1002 and every few seconds while live
//! messages arrive (type 2 until the end, confirming each page), sends with a `client_msg_id` and
//! retries the same id on 5000, on a silent server and after reconnecting, and reconnects
//! with jittered backoff through the load balancer. A flaky device drops its connection
//! right after asking for a catch-up now and then.

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::ledger::{Acked, Conversation, Device, Ledger, Target};

/// How long a send may go unanswered on a live connection before it is sent again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);
/// How often a device that received live messages syncs (and confirms) again.
const CONFIRM_EVERY: Duration = Duration::from_secs(2);

/// What one device does.
pub struct Spec {
    pub device: Device,
    pub token: String,
    pub url: String,
    /// Whom it writes to: users (private) and groups.
    pub targets: Vec<Target>,
    /// Time between two sends.
    pub pace: Duration,
    pub seed: u64,
    /// Now and then drops the connection right after asking for a catch-up page, as a
    /// phone losing its network mid-sync does.
    pub flaky: bool,
}

struct Pending {
    target: Target,
    first_sent: Instant,
    /// When it was last sent on the current connection (`None`: not on this one yet).
    sent: Option<Instant>,
    retry_at: Option<Instant>,
}

/// Runs the device: sends until `sending` is cancelled, then until every send is
/// acknowledged (or `give_up` is cancelled), then, once every device is there (`all_sent`:
/// nothing can be acknowledged any more), makes a final catch-up on a fresh connection.
/// Returns how many sends were never acknowledged.
pub async fn run(
    spec: Spec,
    ledger: Arc<Ledger>,
    sending: CancellationToken,
    give_up: CancellationToken,
    all_sent: Arc<tokio::sync::Barrier>,
) -> usize {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut next = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        if sending.is_cancelled() && pending.is_empty() || give_up.is_cancelled() {
            break;
        }
        let Some(ws) = connect(&spec).await else {
            let pause = backoff.mul_f64(rng.random_range(0.5..1.5));
            backoff = (backoff * 2).min(Duration::from_secs(2));
            tokio::time::sleep(pause).await;
            continue;
        };
        backoff = Duration::from_millis(100);
        ledger.reconnected();
        for p in pending.values_mut() {
            p.sent = None;
        }
        session(
            &spec,
            ws,
            &ledger,
            &mut pending,
            &mut next,
            &mut rng,
            &sending,
            &give_up,
        )
        .await;
    }
    tokio::select! {
        _ = all_sent.wait() => {}
        () = give_up.cancelled() => {}
    }
    // The final catch-up, on a fresh connection: everything still owed to this device.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(ws) = connect(&spec).await
            && final_catch_up(&spec, ws, &ledger).await
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pending.len()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(spec: &Spec) -> Option<Ws> {
    let url = format!("{}?device_id={}", spec.url, spec.device.1);
    let mut request = url.into_client_request().ok()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", spec.token).parse().ok()?,
    );
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .ok()?
    .ok()?;
    Some(ws)
}

/// One connection's life: catch up, send, retry, confirm, until it breaks or the work is
/// done.
#[allow(clippy::too_many_arguments)]
async fn session(
    spec: &Spec,
    mut ws: Ws,
    ledger: &Ledger,
    pending: &mut BTreeMap<String, Pending>,
    next: &mut u64,
    rng: &mut StdRng,
    sending: &CancellationToken,
    give_up: &CancellationToken,
) {
    let mut tick = tokio::time::interval(spec.pace);
    let mut catching_up = false;
    let mut live_since_sync = false;
    let mut last_confirm = Instant::now();
    loop {
        if sending.is_cancelled() && pending.is_empty() || give_up.is_cancelled() {
            let _ = ws.close(None).await;
            return;
        }
        tokio::select! {
            frame = tokio::time::timeout(Duration::from_secs(15), ws.next()) => {
                let text = match frame {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return,
                    Ok(Some(Ok(_))) => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    ledger.unexpected(format!("not JSON: {text}"));
                    continue;
                };
                match frame["code"].as_u64().unwrap_or(0) {
                    1000 => {
                        catching_up = true;
                        if send(&mut ws, json!({"type": 2})).await.is_err() {
                            return;
                        }
                        if spec.flaky && rng.random_range(0..4) == 0 {
                            ledger.cut_mid_sync();
                            return; // dropped with the reply on its way
                        }
                    }
                    1002 => {
                        catching_up = true;
                        if send(&mut ws, json!({"type": 2})).await.is_err() {
                            return;
                        }
                    }
                    2000 => {
                        let live = frame["source"] == "live";
                        if let Some((id, sender, conversation)) = message_of(&frame) {
                            ledger.received(&spec.device, id, sender, conversation, live);
                            if live {
                                live_since_sync = true;
                            }
                        }
                    }
                    2200 => {
                        let last = frame["last_id"].as_str().unwrap_or_default().to_string();
                        let more = frame["content"] == "more";
                        if !last.is_empty()
                            && send(&mut ws, json!({"type": 9, "content": last})).await.is_err()
                        {
                            return;
                        }
                        if more {
                            if send(&mut ws, json!({"type": 2})).await.is_err() {
                                return;
                            }
                        } else {
                            catching_up = false;
                        }
                    }
                    2100 | 2101 => {
                        let cid = frame["client_msg_id"].as_str().unwrap_or_default();
                        let id = frame["id"].as_str().and_then(|s| Uuid::parse_str(s).ok());
                        match (pending.remove(cid), id) {
                            (Some(p), Some(id)) => ledger.acked(
                                cid,
                                id,
                                Acked {
                                    sender: spec.device.0,
                                    to: p.target,
                                    first_sent: p.first_sent,
                                },
                            ),
                            // An answer to a retry whose first answer arrived already.
                            (None, Some(_)) => {}
                            _ => ledger.unexpected(format!("odd acknowledgement {frame}")),
                        }
                    }
                    5000 | 4290 => {
                        let cid = frame["client_msg_id"].as_str().unwrap_or_default();
                        if let Some(p) = pending.get_mut(cid) {
                            p.retry_at = Some(Instant::now() + Duration::from_millis(300));
                        }
                    }
                    1001 | 1003 | 1004 | 2300 | 2301 | 2400 | 2500 | 2800 => {}
                    _ => ledger.unexpected(format!("device {:?}: {frame}", spec.device)),
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                if !sending.is_cancelled() {
                    *next += 1;
                    let cid = format!("{}-{}-{}", spec.device.0, spec.device.1, next);
                    let target = spec.targets[rng.random_range(0..spec.targets.len())].clone();
                    pending.insert(cid, Pending { target, first_sent: now, sent: None, retry_at: None });
                }
                // Everything not yet sent on this connection, due for a retry, or silent
                // for too long goes (again) with its client_msg_id.
                for (cid, p) in pending.iter_mut() {
                    let due = match (p.sent, p.retry_at) {
                        (None, _) => true,
                        (_, Some(at)) => at <= now,
                        (Some(sent), None) => now.duration_since(sent) > ANSWER_TIMEOUT,
                    };
                    if !due {
                        continue;
                    }
                    if p.sent.is_some() {
                        ledger.retried();
                    }
                    p.sent = Some(now);
                    p.retry_at = None;
                    let frame = match &p.target {
                        Target::User(to) => json!({"type": 1, "recipient_id": to, "content": cid, "client_msg_id": cid}),
                        Target::Group(g) => json!({"type": 4, "group_id": g, "content": cid, "client_msg_id": cid}),
                    };
                    if send(&mut ws, frame).await.is_err() {
                        return;
                    }
                }
                // Live messages are confirmed by syncing again (each page confirms itself).
                if !catching_up && live_since_sync && now.duration_since(last_confirm) >= CONFIRM_EVERY {
                    last_confirm = now;
                    live_since_sync = false;
                    catching_up = true;
                    if send(&mut ws, json!({"type": 2})).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Syncs until the end on a fresh connection, recording what comes; false if the
/// connection broke first.
async fn final_catch_up(spec: &Spec, mut ws: Ws, ledger: &Ledger) -> bool {
    if send(&mut ws, json!({"type": 2, "limit": 500}))
        .await
        .is_err()
    {
        return false;
    }
    loop {
        let text = match tokio::time::timeout(Duration::from_secs(15), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => {
                return false;
            }
            Ok(Some(Ok(_))) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        match frame["code"].as_u64().unwrap_or(0) {
            2000 => {
                if let Some((id, sender, conversation)) = message_of(&frame) {
                    ledger.received(&spec.device, id, sender, conversation, false);
                }
            }
            2200 if frame["content"] == "more" => {
                let again = send(&mut ws, json!({"type": 2, "limit": 500})).await;
                if again.is_err() {
                    return false;
                }
            }
            2200 => {
                let _ = ws.close(None).await;
                return true;
            }
            _ => {}
        }
    }
}

async fn send(ws: &mut Ws, frame: Value) -> Result<(), ()> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ws.send(Message::text(frame.to_string())),
    )
    .await
    .map_err(|_| ())?
    .map_err(|_| ())
}

/// The id, sender and conversation of a 2000 frame.
pub fn message_of(frame: &Value) -> Option<(Uuid, i64, Conversation)> {
    let id = Uuid::parse_str(frame["id"].as_str()?).ok()?;
    let sender = frame["sender_id"].as_i64()?;
    let conversation = match (frame["recipient_id"].as_i64(), frame["group_id"].as_str()) {
        (Some(r), _) => Conversation::Private(sender.min(r), sender.max(r)),
        (None, Some(g)) => Conversation::Group(g.to_string()),
        _ => return None,
    };
    Some((id, sender, conversation))
}
