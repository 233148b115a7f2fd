//! Typing (type 10): "start" and "stop" events for a conversation, forwarded through the bus
//! to the other participants' online devices (and the sender's other devices) as 2600, never
//! stored. Each connection forwards at most one "start" per conversation every
//! `TYPING_INTERVAL`; a "stop" passes only after a forwarded "start". Clients clear an
//! indicator `codes::TYPING_EXPIRY_MS` after the last "start" they received.

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use super::Session;
use crate::message::Target;
use crate::protocol::{codes, server};
use crate::store::Role;

/// At most one "start" per connection and conversation is forwarded this often.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(3);
/// Conversations whose typing state one connection keeps; one more forgets the one whose
/// last "start" is oldest (its next "start" then passes at once).
pub const TYPING_CONVERSATIONS: usize = 16;

/// One connection's typing state: per conversation, when its last "start" was let through
/// the rate check, and whether that start was forwarded (so a "stop" may follow).
#[derive(Default)]
pub struct TypingState {
    /// At most `TYPING_CONVERSATIONS` entries: a linear scan is cheaper than hashing.
    recent: Mutex<Vec<Recent>>,
}

struct Recent {
    target: Target,
    at: Instant,
    forwarded: bool,
}

impl TypingState {
    /// A "start" for `target` at `now`: `Err(wait)` while the last one is younger than
    /// `TYPING_INTERVAL`; otherwise it is taken (not yet forwarded).
    fn start(&self, target: &Target, now: Instant) -> Result<(), Duration> {
        let mut recent = self.recent.lock();
        if let Some(entry) = recent.iter_mut().find(|e| e.target == *target) {
            let since = now.saturating_duration_since(entry.at);
            if since < TYPING_INTERVAL {
                return Err(TYPING_INTERVAL - since);
            }
            entry.at = now;
            entry.forwarded = false;
            return Ok(());
        }
        if recent.len() >= TYPING_CONVERSATIONS
            && let Some(oldest) = (0..recent.len()).min_by_key(|&i| recent[i].at)
        {
            recent.swap_remove(oldest);
        }
        recent.push(Recent {
            target: target.clone(),
            at: now,
            forwarded: false,
        });
        Ok(())
    }

    /// The "start" taken for `target` was forwarded.
    fn forwarded(&self, target: &Target) {
        if let Some(entry) = self.recent.lock().iter_mut().find(|e| e.target == *target) {
            entry.forwarded = true;
        }
    }

    /// A "stop" for `target`: whether to forward it (a "start" was, and no "stop" since).
    fn stop(&self, target: &Target) -> bool {
        let mut recent = self.recent.lock();
        match recent.iter_mut().find(|e| e.target == *target) {
            Some(entry) if entry.forwarded => {
                entry.forwarded = false;
                true
            }
            _ => false,
        }
    }
}

impl Session {
    /// Type 10: I am typing (`typing`) or stopped in `target`. Nothing answers a forwarded
    /// event or a dropped "stop"; a refused one is answered (4000, 4003, 4004, 4291, 5000).
    pub(super) async fn typing(&self, target: Target, typing: bool) {
        if target == Target::User(self.user) {
            return self.refuse(codes::BAD_FRAME, "recipient_id must not be yourself", None);
        }
        if typing {
            if let Err(wait) = self.typing.start(&target, std::time::Instant::now()) {
                let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                return self.outbox.reply(server::typing_too_fast(&target, wait_ms));
            }
            if !self.may_type(&target).await {
                return;
            }
            self.typing.forwarded(&target);
        } else if !self.typing.stop(&target) {
            return;
        }
        self.fan_out(&target, &server::typing(self.user, &target, typing))
            .await;
    }

    /// Whether `target` takes my typing: the peer does not block me, or I am a member of
    /// the group. Refusals are answered as a message's would be.
    async fn may_type(&self, target: &Target) -> bool {
        let refusal = match target {
            Target::User(peer) => match self.state.store.blocks(*peer, self.user).await {
                Ok(false) => return true,
                Ok(true) => (
                    codes::FORBIDDEN,
                    format!("user {peer} does not accept your messages"),
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "typing: block check failed");
                    (
                        codes::STORAGE_UNAVAILABLE,
                        "storage unavailable: try again".into(),
                    )
                }
            },
            Target::Group(group) => match self.state.store.role(group, self.user).await {
                Ok(Some(Role::Owner | Role::Admin | Role::Member)) => return true,
                Ok(Some(Role::Outsider)) => (
                    codes::FORBIDDEN,
                    format!("you are not a member of group {group}"),
                ),
                Ok(None) => (codes::NOT_FOUND, format!("no such group {group}")),
                Err(e) => {
                    tracing::warn!(error = %e, "typing: membership check failed");
                    (
                        codes::STORAGE_UNAVAILABLE,
                        "storage unavailable: try again".into(),
                    )
                }
            },
        };
        self.refuse(refusal.0, &refusal.1, None);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_start_per_interval_and_stop_only_after_a_forwarded_start() {
        let state = TypingState::default();
        let (t0, peer) = (Instant::now(), Target::User(2));
        assert!(!state.stop(&peer), "no start yet");
        assert_eq!(state.start(&peer, t0), Ok(()));
        assert!(!state.stop(&peer), "taken but not forwarded (refused)");
        state.forwarded(&peer);
        let wait = state.start(&peer, t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(2));
        assert!(state.stop(&peer));
        assert!(!state.stop(&peer), "one stop per start");
        assert!(state.start(&peer, t0 + Duration::from_secs(2)).is_err());
        assert_eq!(state.start(&peer, t0 + TYPING_INTERVAL), Ok(()));
    }

    #[test]
    fn keeps_at_most_the_bound_forgetting_the_oldest() {
        let state = TypingState::default();
        let t0 = Instant::now();
        for i in 0..=TYPING_CONVERSATIONS as i64 {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(state.start(&Target::User(i + 1), at), Ok(()));
        }
        assert_eq!(state.recent.lock().len(), TYPING_CONVERSATIONS);
        // User 1's entry, the oldest, was forgotten: its start passes again at once.
        assert_eq!(state.start(&Target::User(1), t0), Ok(()));
        assert!(state.start(&Target::User(3), t0).is_err());
    }
}
