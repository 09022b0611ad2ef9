//! Start and stop order: dependency depth, then priority (DESIGN §4).
//!
//! A program's *tier* is `(depth, priority)`, where depth is 0 without
//! `depends_on` and one more than its deepest dependency otherwise. Programs
//! start in ascending tier order (a dependent additionally waits until every
//! dependency is RUNNING); they stop in descending tier order, a whole tier in
//! parallel, the next tier only once the previous one has stopped.
//! [`StopPlan`] holds that progression; the supervisor advances it after every
//! event. Config validation guarantees there are no cycles.

use std::collections::BTreeMap;

use crate::config::{ProgramConfig, ProgramName};

/// `(depth, priority)` of a program.
pub type Tier = (u32, i32);

/// Tier of every program in `programs` (dependencies outside the map count as depth 0).
pub fn tiers<'a>(
    programs: impl IntoIterator<Item = &'a ProgramConfig> + Clone,
) -> BTreeMap<ProgramName, Tier> {
    let by_name: BTreeMap<&str, &ProgramConfig> = programs
        .clone()
        .into_iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut depth: BTreeMap<ProgramName, u32> = BTreeMap::new();
    fn depth_of(
        name: &str,
        by_name: &BTreeMap<&str, &ProgramConfig>,
        memo: &mut BTreeMap<ProgramName, u32>,
        guard: u32,
    ) -> u32 {
        if let Some(d) = memo.get(name) {
            return *d;
        }
        let Some(p) = by_name.get(name) else { return 0 };
        // `guard` bounds the recursion even if a cycle slipped through validation.
        let d = if guard > 10_000 {
            0
        } else {
            p.depends_on
                .iter()
                .filter(|d| by_name.contains_key(d.name.as_str()))
                .map(|d| depth_of(&d.name, by_name, memo, guard + 1) + 1)
                .max()
                .unwrap_or(0)
        };
        memo.insert(name.into(), d);
        d
    }
    programs
        .into_iter()
        .map(|p| {
            let d = depth_of(&p.name, &by_name, &mut depth, 0);
            (p.name.clone(), (d, p.priority))
        })
        .collect()
}

/// Names sorted in start order.
pub fn start_order(tiers: &BTreeMap<ProgramName, Tier>) -> Vec<ProgramName> {
    let mut names: Vec<(&Tier, &ProgramName)> = tiers.iter().map(|(n, t)| (t, n)).collect();
    names.sort();
    names.into_iter().map(|(_, n)| n.clone()).collect()
}

/// A stop of several programs, tier by tier, highest tier first.
#[derive(Debug, Clone)]
pub struct StopPlan {
    /// Remaining tiers, the next one to stop last.
    pending: Vec<Vec<ProgramName>>,
    /// The tier being stopped now.
    current: Vec<ProgramName>,
}

impl StopPlan {
    /// A plan for `names`, ordered by `tiers`.
    pub fn new(names: &[ProgramName], tiers: &BTreeMap<ProgramName, Tier>) -> StopPlan {
        let mut grouped: BTreeMap<Tier, Vec<ProgramName>> = BTreeMap::new();
        for n in names {
            let t = tiers.get(n).copied().unwrap_or((0, 999));
            grouped.entry(t).or_default().push(n.clone());
        }
        // Ascending tiers: popping from the end yields the highest tier first.
        StopPlan {
            pending: grouped.into_values().collect(),
            current: Vec::new(),
        }
    }

    /// Advances while the current tier is down; returns the names to send a
    /// stop to now. `is_down(name)` tells whether a program has no process left.
    pub fn advance(&mut self, is_down: impl Fn(&str) -> bool) -> Vec<ProgramName> {
        let mut to_stop = Vec::new();
        loop {
            self.current.retain(|n| !is_down(n));
            if !self.current.is_empty() {
                return to_stop;
            }
            match self.pending.pop() {
                Some(tier) => {
                    to_stop.extend(tier.iter().cloned());
                    self.current = tier;
                }
                None => return to_stop,
            }
        }
    }

    /// True once every tier has been stopped.
    pub fn done(&self) -> bool {
        self.current.is_empty() && self.pending.is_empty()
    }

    /// Whether `name` is in the tier being stopped now.
    pub fn is_current(&self, name: &str) -> bool {
        self.current.iter().any(|n| n == name)
    }

    /// Forgets a program (removed from the config).
    pub fn forget(&mut self, name: &str) {
        self.current.retain(|n| n != name);
        for t in &mut self.pending {
            t.retain(|n| n != name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn prog(name: &str, prio: i32, deps: &[&str]) -> ProgramConfig {
        let mut p = ProgramConfig::with_defaults(name, vec!["true".into()]);
        p.priority = prio;
        p.depends_on = deps
            .iter()
            .map(|d| crate::config::Dependency::on(*d, crate::config::Condition::Ready))
            .collect();
        p
    }

    #[test]
    fn depth_then_priority() {
        let ps = [
            prog("web", 1, &["db"]),
            prog("db", 999, &[]),
            prog("cache", 5, &[]),
            prog("worker", 1, &["web"]),
        ];
        let t = tiers(ps.iter());
        assert_eq!(t["db"], (0, 999));
        assert_eq!(t["web"], (1, 1));
        assert_eq!(t["worker"], (2, 1));
        assert_eq!(start_order(&t), vec!["cache", "db", "web", "worker"]);
    }

    #[test]
    fn stop_plan_goes_tier_by_tier_in_reverse() {
        let ps = [
            prog("a", 999, &[]),
            prog("b", 999, &[]),
            prog("web", 999, &["a"]),
        ];
        let t = tiers(ps.iter());
        let names: Vec<ProgramName> = t.keys().cloned().collect();
        let mut plan = StopPlan::new(&names, &t);
        let mut down: BTreeSet<String> = BTreeSet::new();
        assert_eq!(plan.advance(|n| down.contains(n)), vec!["web"]);
        assert_eq!(
            plan.advance(|n| down.contains(n)),
            Vec::<ProgramName>::new(),
            "waits for web"
        );
        down.insert("web".into());
        assert_eq!(
            plan.advance(|n| down.contains(n)),
            vec!["a", "b"],
            "same tier together"
        );
        down.insert("a".into());
        assert!(!plan.done());
        down.insert("b".into());
        assert!(plan.advance(|n| down.contains(n)).is_empty());
        assert!(plan.done());
    }

    #[test]
    fn already_down_tiers_are_skipped_at_once() {
        let ps = [prog("x", 1, &[]), prog("y", 2, &[])];
        let t = tiers(ps.iter());
        let names: Vec<ProgramName> = t.keys().cloned().collect();
        let mut plan = StopPlan::new(&names, &t);
        assert_eq!(plan.advance(|_| true), vec!["y", "x"]);
        assert!(plan.done());
    }
}
