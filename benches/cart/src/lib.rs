//! The workload of `cart/mixed_70_30`, apart from the bench target so that it can be tested: a
//! fixed cycle of ten cart operations (seven reads, three writes) over a few users in turn, and a
//! model of what it does to the cart cache, which the benchmark checks against the cache's
//! counters.
//!
//! Each write toggles the user's extra product: added when absent, removed when present. Every
//! cart therefore alternates between two states and nothing drifts however long criterion
//! iterates, without any reset. A read hits the cache unless the user's cart was written since
//! it was last read (a write replaces the cache entry with a tombstone), so the mix also measures
//! the misses that writes cause, as a real read/write mix does.

/// One operation of the mix, on user `user` (an index into the mix's users).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `get_cart`; `extra` says whether the cart holds the user's extra product.
    Read { user: usize, extra: bool },
    /// `add_item` of the user's extra product, which the cart does not hold.
    Add { user: usize },
    /// `remove_item` of the user's extra product, which the cart holds.
    Remove { user: usize },
}

/// Users of the mix in the benchmark: 1 modulo 10, see [`Mix`].
pub const MIX_USERS: usize = 11;

/// One cycle: `true` for a read. Seven reads and three writes, the writes spread out.
pub const CYCLE: [bool; 10] = [
    true, true, false, true, true, false, true, true, false, true,
];

/// The schedule and the cache model. Operation `k` (counting from 0 over the whole run) goes to
/// user `k % users`. With 11 users (or any number that is 1 modulo 10) each user's own
/// operations follow the cycle in order, so every write is followed by a read of that cart.
#[derive(Clone, Debug)]
pub struct Mix {
    users: usize,
    next: u64,
    holds_extra: Vec<bool>,
    cached: Vec<bool>,
    hits: u64,
    misses: u64,
}

impl Mix {
    /// A mix over `users` users (at least one) whose carts do not hold their extra product and
    /// are not cached, as after `fixtures::refill_carts`.
    pub fn new(users: usize) -> Mix {
        let users = users.max(1);
        Mix {
            users,
            next: 0,
            holds_extra: vec![false; users],
            cached: vec![false; users],
            hits: 0,
            misses: 0,
        }
    }

    /// The operations of the next cycle (one benchmark iteration), with the model advanced.
    pub fn next_cycle(&mut self) -> [Step; 10] {
        CYCLE.map(|read| self.step(read))
    }

    fn step(&mut self, read: bool) -> Step {
        // `users` is a small usize, so the remainder fits.
        let user = (self.next % self.users as u64) as usize;
        self.next += 1;
        if read {
            if self.cached[user] {
                self.hits += 1;
            } else {
                self.misses += 1;
                self.cached[user] = true;
            }
            return Step::Read {
                user,
                extra: self.holds_extra[user],
            };
        }
        self.cached[user] = false;
        self.holds_extra[user] = !self.holds_extra[user];
        if self.holds_extra[user] {
            Step::Add { user }
        } else {
            Step::Remove { user }
        }
    }

    /// Reads that should have hit the cache so far.
    pub fn expected_hits(&self) -> u64 {
        self.hits
    }

    /// Reads that should have missed it so far.
    pub fn expected_misses(&self) -> u64 {
        self.misses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: usize = MIX_USERS;

    fn cycles(mix: &mut Mix, n: usize) -> Vec<Step> {
        (0..n).flat_map(|_| mix.next_cycle()).collect()
    }

    #[test]
    fn a_cycle_is_seventy_percent_reads() {
        let mut mix = Mix::new(USERS);
        let steps = mix.next_cycle();
        let reads = steps
            .iter()
            .filter(|s| matches!(s, Step::Read { .. }))
            .count();
        assert_eq!(reads, 7);
        // Ten different users, none cached yet: every read misses.
        assert_eq!((mix.expected_hits(), mix.expected_misses()), (0, 7));
    }

    #[test]
    fn writes_alternate_so_carts_never_drift() {
        let mut mix = Mix::new(USERS);
        let steps = cycles(&mut mix, 220);
        for user in 0..USERS {
            let writes: Vec<Step> = steps
                .iter()
                .copied()
                .filter(|s| !matches!(s, Step::Read { .. }) && user_of(*s) == user)
                .collect();
            assert_eq!(writes.len(), 220 * 3 / USERS);
            for (i, write) in writes.iter().enumerate() {
                let expected = if i % 2 == 0 {
                    Step::Add { user }
                } else {
                    Step::Remove { user }
                };
                assert_eq!(*write, expected);
            }
        }
    }

    #[test]
    fn reads_expect_what_the_last_write_left() {
        let mut mix = Mix::new(USERS);
        let mut holds = [false; USERS];
        for step in cycles(&mut mix, 50) {
            match step {
                Step::Read { user, extra } => assert_eq!(extra, holds[user]),
                Step::Add { user } => holds[user] = true,
                Step::Remove { user } => holds[user] = false,
            }
        }
    }

    #[test]
    fn every_user_sees_the_cycle_in_order() {
        // With 11 users, user u's operations are positions u, u + 1, u + 2, ... of the cycle:
        // each user reads and writes in the same 70/30 rhythm, every write followed by a read.
        let mut mix = Mix::new(USERS);
        let steps = cycles(&mut mix, USERS);
        for user in 0..USERS {
            let positions: Vec<usize> = steps
                .iter()
                .enumerate()
                .filter(|(_, s)| user_of(**s) == user)
                .map(|(k, _)| k % 10)
                .collect();
            let expected: Vec<usize> = (0..10).map(|i| (user + i) % 10).collect();
            assert_eq!(positions, expected);
        }
    }

    #[test]
    fn the_cache_model_is_periodic_with_one_miss_per_write() {
        let mut mix = Mix::new(USERS);
        cycles(&mut mix, 11);
        // The state repeats every 22 cycles (each user writes three times per 11 cycles, and
        // the writes toggle), so every period has the same hits and misses.
        let per_period = |mix: &mut Mix| {
            let (hits, misses) = (mix.expected_hits(), mix.expected_misses());
            cycles(mix, 22);
            (mix.expected_hits() - hits, mix.expected_misses() - misses)
        };
        let a = per_period(&mut mix);
        let b = per_period(&mut mix);
        assert_eq!(a, b);
        // 66 writes per period, each followed by a read of its user that misses; the other
        // reads hit.
        assert_eq!(a, (22 * 7 - 66, 66));
    }

    fn user_of(step: Step) -> usize {
        match step {
            Step::Read { user, .. } | Step::Add { user } | Step::Remove { user } => user,
        }
    }
}
