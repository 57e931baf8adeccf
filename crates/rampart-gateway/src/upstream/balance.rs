//! Choosing one target among a service's: power of two choices (two distinct random
//! candidates, the one with the lower latency × load score), which spreads load nearly as well
//! as least-loaded without every gateway herding onto the same target.

use super::Target;
use super::health::NodeHealth;

/// A target of `targets` not in `tried`, by power of two choices. Ejected targets are skipped
/// unless every candidate is ejected (a pool of failing targets still gets tried).
pub fn pick<'a>(targets: &'a [Target], tried: &[String]) -> Option<&'a Target> {
    let fresh: Vec<&Target> = targets.iter().filter(|t| !tried.contains(&t.name)).collect();
    p2c(&fresh, |t| &t.health).copied()
}

/// Power of two choices among `candidates`, by the health `health` gives each.
pub fn p2c<T>(candidates: &[T], health: impl Fn(&T) -> &NodeHealth) -> Option<&T> {
    let live: Vec<&T> = candidates.iter().filter(|c| !health(c).is_ejected()).collect();
    let pool: Vec<&T> = if live.is_empty() { candidates.iter().collect() } else { live };
    match pool.len() {
        0 => None,
        1 => Some(pool[0]),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (x, y) = (pool[a], pool[b]);
            Some(if health(x).score() <= health(y).score() { x } else { y })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::upstream::HealthBoard;

    fn target(board: &HealthBoard, name: &str) -> Target {
        Target { name: name.to_owned(), addr: ([127, 0, 0, 1], 1).into(), health: board.get(name) }
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_skips_ejected() {
        let board = HealthBoard::default();
        let nodes: Vec<_> = ["a", "b"].iter().map(|n| board.get(n)).collect();
        let _busy: Vec<_> = (0..10).map(|_| nodes[0].start()).collect();
        for _ in 0..20 {
            assert_eq!(p2c(&nodes, |n| n).unwrap().name, "b");
        }
        let peers = nodes.clone();
        for _ in 0..3 {
            nodes[1].failed();
        }
        assert!(board.maybe_eject(&nodes[1], &peers, "test"));
        assert_eq!(p2c(&nodes, |n| n).unwrap().name, "a");
    }

    #[test]
    fn tried_targets_are_not_picked_again() {
        let board = HealthBoard::default();
        let targets: Vec<Target> = ["a", "b", "c"].iter().map(|n| target(&board, n)).collect();
        let mut tried = Vec::new();
        while let Some(t) = pick(&targets, &tried) {
            assert!(!tried.contains(&t.name));
            tried.push(t.name.clone());
        }
        assert_eq!(tried.len(), 3);
        assert!(pick(&[], &[]).is_none());
    }
}
