//! Choosing a server: a pure function over the candidates' load, so the
//! rule is tested without any I/O.

use crate::config::Balance;

/// A server that may take the request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the group's servers.
    pub index: usize,
    /// Requests in flight to it.
    pub active: usize,
    pub weight: u32,
}

/// Picks among `candidates` (never empty). `turn` is a counter that grows by
/// one per pick (round-robin position, tie breaking); `random` two random words.
pub fn choose(balance: Balance, candidates: &[Candidate], turn: usize, random: [u64; 2]) -> usize {
    debug_assert!(!candidates.is_empty());
    // Load per unit of weight, compared without division: a/wa < b/wb  <=>  a*wb < b*wa.
    let lighter = |a: &Candidate, b: &Candidate| {
        (a.active as u64 * b.weight as u64) < (b.active as u64 * a.weight as u64)
    };
    match balance {
        Balance::LeastConn => {
            let n = candidates.len();
            // Start the scan at `turn` so equal loads take turns.
            let mut best = &candidates[turn % n];
            for i in 1..n {
                let c = &candidates[(turn + i) % n];
                if lighter(c, best) {
                    best = c;
                }
            }
            best.index
        }
        Balance::RoundRobin => {
            let total: u64 = candidates.iter().map(|c| c.weight as u64).sum();
            let mut slot = turn as u64 % total;
            for c in candidates {
                if slot < c.weight as u64 {
                    return c.index;
                }
                slot -= c.weight as u64;
            }
            candidates[0].index
        }
        Balance::RandomTwo => {
            let n = candidates.len() as u64;
            let a = &candidates[(random[0] % n) as usize];
            let b = &candidates[(random[1] % n) as usize];
            if lighter(b, a) { b.index } else { a.index }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize, active: usize, weight: u32) -> Candidate {
        Candidate {
            index,
            active,
            weight,
        }
    }

    #[test]
    fn least_conn_takes_the_least_loaded_per_weight() {
        let cands = [c(0, 5, 1), c(1, 2, 1), c(2, 3, 1)];
        assert_eq!(choose(Balance::LeastConn, &cands, 0, [0, 0]), 1);
        // Weight 3 with 6 in flight (2 per unit) beats weight 1 with 3.
        let cands = [c(0, 3, 1), c(1, 6, 3)];
        assert_eq!(choose(Balance::LeastConn, &cands, 0, [0, 0]), 1);
    }

    #[test]
    fn least_conn_ties_take_turns() {
        let cands = [c(0, 0, 1), c(1, 0, 1), c(2, 0, 1), c(3, 0, 1)];
        let picks: Vec<usize> = (0..4)
            .map(|t| choose(Balance::LeastConn, &cands, t, [0, 0]))
            .collect();
        assert_eq!(picks, [0, 1, 2, 3]);
    }

    #[test]
    fn round_robin_follows_weights() {
        let cands = [c(0, 0, 1), c(1, 0, 3)];
        let picks: Vec<usize> = (0..8)
            .map(|t| choose(Balance::RoundRobin, &cands, t, [0, 0]))
            .collect();
        assert_eq!(picks.iter().filter(|&&i| i == 1).count(), 6);
    }

    #[test]
    fn random_two_prefers_the_lighter_of_two() {
        let cands = [c(0, 9, 1), c(1, 1, 1)];
        assert_eq!(choose(Balance::RandomTwo, &cands, 0, [0, 1]), 1);
        assert_eq!(choose(Balance::RandomTwo, &cands, 0, [1, 0]), 1);
        assert_eq!(choose(Balance::RandomTwo, &cands, 0, [0, 0]), 0);
    }
}
