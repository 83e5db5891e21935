//! How workers share the endpoint queues (docs/ARCHITECTURE.md §21).
//!
//! An endpoint belongs to one of [`SLOTS`] slots by a hash of its id. Each slot
//! is consumed by the `k` live workers with the highest rendezvous score
//! (highest random weight) for it, `k` being `worker.consumers_per_endpoint`.
//! Every worker computes the same owners from the same member list, with no
//! coordination beyond the list; a worker that joins or leaves changes the
//! owners of about `k / N` of the slots, and nothing else moves.
//!
//! The hash is written out here (FNV-1a, then a SplitMix64 finish) rather than
//! taken from `std`, whose hasher may change between Rust releases: workers
//! built by different compilers must agree.

/// Slots the endpoints are spread over: a membership change costs
/// `SLOTS × members` hashes, whatever the number of endpoints.
pub const SLOTS: u16 = 1024;

/// A stable 64-bit hash of `parts`, each followed by a 0xff separator byte
/// (which no UTF-8 text contains), so `("ab", "c")` and `("a", "bc")` differ.
pub fn hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xff)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // SplitMix64's finalizer: FNV's low bits are weak on short inputs.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The slot of an endpoint.
pub fn slot(endpoint_id: &str) -> u16 {
    (hash(&[endpoint_id.as_bytes()]) % u64::from(SLOTS)) as u16
}

/// The `k` members that consume `slot`, best first (the first is its
/// primary: the one that reports its queue's depth). Fewer when fewer live.
pub fn owners(slot: u16, members: &[String], k: usize) -> Vec<&str> {
    let s = slot.to_be_bytes();
    let mut scored: Vec<(u64, &str)> = members
        .iter()
        .map(|m| (hash(&[m.as_bytes(), &s]), m.as_str()))
        .collect();
    // Ties (practically never) are broken by the id, so every worker agrees.
    scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    scored.into_iter().take(k).map(|(_, m)| m).collect()
}

/// What `me` does with each slot, given the live `members` (`me` among them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Slots `me` consumes, with `true` when `me` is the slot's primary.
    pub owned: std::collections::BTreeMap<u16, bool>,
    /// Workers consuming each endpoint: `min(k, members)`.
    pub consumers: usize,
}

impl Assignment {
    pub fn compute(me: &str, members: &[String], k: usize) -> Self {
        let mut owned = std::collections::BTreeMap::new();
        for slot in 0..SLOTS {
            let o = owners(slot, members, k);
            if let Some(pos) = o.iter().position(|m| *m == me) {
                owned.insert(slot, pos == 0);
            }
        }
        Self {
            owned,
            consumers: k.min(members.len()).max(1),
        }
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.owned.contains_key(&slot)
    }

    pub fn primary(&self, slot: u16) -> bool {
        self.owned.get(&slot).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("worker-{i}")).collect()
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // Pinned values: a change here would split a mixed-version fleet.
        assert_eq!(hash(&[b"ep_1"]), 0xa4a9_81b7_4af4_8b58);
        assert_eq!(slot("ep_01HZX"), 362);
        assert_ne!(hash(&[b"ab", b"c"]), hash(&[b"a", b"bc"]));
    }

    #[test]
    fn every_slot_has_k_owners_and_they_are_spread_evenly() {
        let m = members(4);
        let mut per_member = std::collections::HashMap::new();
        for slot in 0..SLOTS {
            let o = owners(slot, &m, 2);
            assert_eq!(o.len(), 2);
            assert_ne!(o[0], o[1]);
            for w in o {
                *per_member.entry(w).or_insert(0usize) += 1;
            }
        }
        // 1024 slots × 2 owners / 4 members = 512 each; within 15%.
        for (w, n) in per_member {
            assert!((435..=589).contains(&n), "{w} owns {n} slots");
        }
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_slots() {
        let before = members(5);
        let after: Vec<String> = before
            .iter()
            .filter(|m| *m != "worker-3")
            .cloned()
            .collect();
        let mut moved = 0;
        for slot in 0..SLOTS {
            let a: Vec<&str> = owners(slot, &before, 2);
            let b: Vec<&str> = owners(slot, &after, 2);
            if a != b {
                moved += 1;
                // Only slots worker-3 owned change, and the survivor keeps it.
                assert!(a.contains(&"worker-3"), "slot {slot}: {a:?} -> {b:?}");
                for w in &a {
                    if *w != "worker-3" {
                        assert!(b.contains(w));
                    }
                }
            }
        }
        // About k/N = 2/5 of the slots.
        assert!((300..=520).contains(&moved), "{moved} slots moved");
    }

    #[test]
    fn fewer_members_than_k_each_take_everything() {
        let m = members(1);
        let a = Assignment::compute("worker-0", &m, 2);
        assert_eq!(a.owned.len(), usize::from(SLOTS));
        assert!(a.owned.values().all(|p| *p));
        assert_eq!(a.consumers, 1);
    }
}
