//! Which due runs get a worker, in which order: fairly between tenants, and never so that
//! scheduled work takes the last worker from webhook events and runs someone asked for.
//!
//! Two lanes: **interactive** (webhook events, runs asked for through the API) and
//! **background** (schedules, job chains). Interactive runs go first and may take every free
//! worker; background runs may hold at most all but one when there is more than one worker, so
//! a long sync never leaves a webhook waiting for it. Within a lane, tenants take turns: the
//! next run goes to the tenant with the fewest runs in flight, then the fewest runs dispatched
//! so far, so one tenant's 500 due flows cannot starve another's one.

use std::collections::BTreeMap;

/// The lane a run goes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Lane {
    Interactive,
    Background,
}

/// A run waiting for a worker: its tenant and lane; `T` is what the server needs to start it.
pub(crate) struct Waiting<T> {
    pub tenant: String,
    pub lane: Lane,
    pub run: T,
}

/// What is running now and what each tenant was given so far.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Runs in flight, per tenant.
    pub in_flight: BTreeMap<String, usize>,
    /// Background runs in flight.
    pub background: usize,
    /// Runs dispatched since the server started, per tenant.
    pub dispatched: BTreeMap<String, u64>,
}

impl Load {
    pub fn total(&self) -> usize {
        self.in_flight.values().sum()
    }

    pub fn started(&mut self, tenant: &str, lane: Lane) {
        *self.in_flight.entry(tenant.to_owned()).or_default() += 1;
        *self.dispatched.entry(tenant.to_owned()).or_default() += 1;
        if lane == Lane::Background {
            self.background += 1;
        }
    }

    pub fn ended(&mut self, tenant: &str, lane: Lane) {
        if let Some(n) = self.in_flight.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(tenant);
            }
        }
        if lane == Lane::Background {
            self.background = self.background.saturating_sub(1);
        }
    }
}

/// The runs of `waiting` to start now with `workers` workers under `load`, in order, a tenant
/// never past its cap on runs at once (`cap`, when it has one), and the others, left to wait
/// for a worker. `load` is updated with those started.
pub(crate) fn choose<T>(
    waiting: Vec<Waiting<T>>,
    workers: usize,
    load: &mut Load,
    cap: &BTreeMap<String, usize>,
) -> (Vec<T>, Vec<Waiting<T>>) {
    let background_cap = if workers > 1 { workers - 1 } else { workers };
    let mut lanes: BTreeMap<Lane, BTreeMap<String, std::collections::VecDeque<T>>> =
        BTreeMap::new();
    for w in waiting {
        lanes
            .entry(w.lane)
            .or_default()
            .entry(w.tenant)
            .or_default()
            .push_back(w.run);
    }
    let mut chosen = Vec::new();
    let mut left = Vec::new();
    for (lane, mut tenants) in lanes {
        loop {
            if load.total() >= workers
                || (lane == Lane::Background && load.background >= background_cap)
            {
                break;
            }
            let under_cap = |tenant: &String| {
                cap.get(tenant)
                    .is_none_or(|cap| load.in_flight.get(tenant).copied().unwrap_or(0) < *cap)
            };
            let next = tenants
                .iter()
                .filter(|(tenant, runs)| !runs.is_empty() && under_cap(tenant))
                .map(|(tenant, _)| tenant)
                .min_by_key(|tenant| {
                    (
                        load.in_flight.get(*tenant).copied().unwrap_or(0),
                        load.dispatched.get(*tenant).copied().unwrap_or(0),
                    )
                })
                .cloned();
            let Some(tenant) = next else { break };
            if let Some(run) = tenants.get_mut(&tenant).and_then(|runs| runs.pop_front()) {
                load.started(&tenant, lane);
                chosen.push(run);
            }
        }
        for (tenant, runs) in tenants {
            left.extend(runs.into_iter().map(|run| Waiting {
                tenant: tenant.clone(),
                lane,
                run,
            }));
        }
    }
    (chosen, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(tenant: &str, lane: Lane, name: &str) -> Waiting<String> {
        Waiting {
            tenant: tenant.into(),
            lane,
            run: format!("{tenant}/{name}"),
        }
    }

    fn many(tenant: &str, lane: Lane, n: usize) -> Vec<Waiting<String>> {
        (0..n)
            .map(|i| waiting(tenant, lane, &format!("f{i}")))
            .collect()
    }

    #[test]
    fn one_tenants_many_due_flows_do_not_starve_anothers_one() {
        let mut load = Load::default();
        let mut due = many("big", Lane::Background, 500);
        due.push(waiting("small", Lane::Background, "only"));
        let chosen = choose(due, 4, &mut load, &BTreeMap::new()).0;
        // Three background workers of four: tenants take turns.
        assert_eq!(chosen, ["big/f0", "small/only", "big/f1"]);
        assert_eq!(load.total(), 3);
    }

    #[test]
    fn a_tenant_with_runs_in_flight_waits_behind_one_without() {
        let mut load = Load::default();
        load.started("big", Lane::Background);
        load.started("big", Lane::Background);
        let mut due = many("big", Lane::Background, 10);
        due.extend(many("other", Lane::Background, 1));
        let chosen = choose(due, 4, &mut load, &BTreeMap::new()).0;
        assert_eq!(chosen, ["other/f0"], "one background worker was left");
    }

    #[test]
    fn background_runs_leave_a_worker_for_webhooks_and_requests() {
        let mut load = Load::default();
        let chosen = choose(
            many("a", Lane::Background, 10),
            3,
            &mut load,
            &BTreeMap::new(),
        )
        .0;
        assert_eq!(chosen.len(), 2);
        // A webhook run arriving while the syncs hold their two workers gets the third.
        let chosen = choose(
            vec![
                waiting("a", Lane::Background, "again"),
                waiting("b", Lane::Interactive, "hook"),
            ],
            3,
            &mut load,
            &BTreeMap::new(),
        )
        .0;
        assert_eq!(chosen, ["b/hook"]);
        assert_eq!(load.total(), 3);
        // Full: nothing more starts until a run ends.
        assert!(
            choose(
                many("c", Lane::Interactive, 1),
                3,
                &mut load,
                &BTreeMap::new()
            )
            .0
            .is_empty()
        );
        load.ended("a", Lane::Background);
        assert_eq!(
            choose(
                many("c", Lane::Interactive, 1),
                3,
                &mut load,
                &BTreeMap::new()
            )
            .0,
            ["c/f0"]
        );
    }

    #[test]
    fn interactive_runs_go_first_and_may_take_every_worker() {
        let mut load = Load::default();
        let mut due = many("a", Lane::Background, 3);
        due.extend(many("b", Lane::Interactive, 3));
        let chosen = choose(due, 2, &mut load, &BTreeMap::new()).0;
        assert_eq!(chosen, ["b/f0", "b/f1"]);
    }

    #[test]
    fn a_single_worker_serves_background_runs_too() {
        let mut load = Load::default();
        assert_eq!(
            choose(
                many("a", Lane::Background, 2),
                1,
                &mut load,
                &BTreeMap::new()
            )
            .0,
            ["a/f0"]
        );
        load.ended("a", Lane::Background);
        assert!(load.in_flight.is_empty());
        assert_eq!(load.background, 0);
    }

    #[test]
    fn a_tenant_at_its_cap_waits_while_others_run() {
        let mut load = Load::default();
        let caps = BTreeMap::from([("capped".to_owned(), 1)]);
        let mut due = many("capped", Lane::Interactive, 3);
        due.extend(many("free", Lane::Interactive, 2));
        let chosen = choose(due, 8, &mut load, &caps).0;
        assert_eq!(chosen, ["capped/f0", "free/f0", "free/f1"]);
        // Its run ended: the next may start.
        load.ended("capped", Lane::Interactive);
        let chosen = choose(many("capped", Lane::Interactive, 2), 8, &mut load, &caps).0;
        assert_eq!(chosen, ["capped/f0"]);
    }

    #[test]
    fn tenants_that_were_given_less_come_first() {
        let mut load = Load::default();
        for _ in 0..5 {
            load.started("busy", Lane::Background);
            load.ended("busy", Lane::Background);
        }
        let mut due = many("busy", Lane::Background, 1);
        due.extend(many("quiet", Lane::Background, 1));
        assert_eq!(choose(due, 2, &mut load, &BTreeMap::new()).0, ["quiet/f0"]);
    }
}
