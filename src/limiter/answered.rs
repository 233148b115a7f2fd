//! `Answered`: this node's memory of the pairs that are past the stranger limit for good.
//!
//! Once `to` has written to `from`, the limit between them is gone forever, so a node that
//! saw `Verdict::Answered` for a pair skips the counters for it from then on: an ongoing
//! conversation costs no Redis round trip per message. (Mutual follows are not remembered:
//! an unfollow must bring the limit back.) Bounded: past `CAPACITY` pairs the memory starts
//! over, which only costs round trips.

use parking_lot::RwLock;
use std::collections::HashSet;

use crate::ids::UserId;

/// Pairs remembered per shard before that shard starts over.
const CAPACITY: usize = 1 << 17;
const SHARDS: usize = 16;

/// Sharded set of (from, to) pairs where `to` has answered `from`.
pub struct Answered {
    shards: Vec<RwLock<HashSet<(UserId, UserId)>>>,
}

impl Default for Answered {
    fn default() -> Self {
        Answered {
            shards: (0..SHARDS).map(|_| RwLock::new(HashSet::new())).collect(),
        }
    }
}

impl Answered {
    fn shard(&self, from: UserId, to: UserId) -> &RwLock<HashSet<(UserId, UserId)>> {
        let mix = (from as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (to as u64);
        &self.shards[(mix as usize) % SHARDS]
    }

    /// Whether `to` is known to have answered `from`.
    pub fn contains(&self, from: UserId, to: UserId) -> bool {
        self.shard(from, to).read().contains(&(from, to))
    }

    /// Remembers that `to` answered `from` (and so the limit is gone both ways).
    pub fn insert(&self, from: UserId, to: UserId) {
        for (a, b) in [(from, to), (to, from)] {
            let mut shard = self.shard(a, b).write();
            if shard.len() >= CAPACITY {
                shard.clear();
            }
            shard.insert((a, b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_both_directions() {
        let answered = Answered::default();
        assert!(!answered.contains(1, 2));
        answered.insert(1, 2);
        assert!(answered.contains(1, 2));
        assert!(answered.contains(2, 1));
        assert!(!answered.contains(1, 3));
    }
}
