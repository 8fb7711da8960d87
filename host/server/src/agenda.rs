//! When each served flow next needs a turn: its schedule's next time, its webhook events' next
//! look, the end of its rest; at once when it is new, deployed again, got events or ended a
//! run. A turn of the loop takes only the flows due, so ten thousand idle flows cost it
//! nothing; only a change of the flows served is looked at flow by flow.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use crate::ServedFlow;
use crate::flows::FlowKey;

/// What changed in the flows served since the agenda last followed them.
#[derive(Default)]
pub(crate) struct Followed {
    /// New, or deployed again.
    pub fresh: Vec<Arc<ServedFlow>>,
    /// Served no more (deleted, disabled, their tenant suspended or deleted), as they were.
    pub gone: Vec<Arc<ServedFlow>>,
}

#[derive(Default)]
pub(crate) struct Agenda {
    /// The turns to take, by time.
    queue: BTreeSet<(SystemTime, FlowKey)>,
    /// Each flow served, as last followed, with the time of its turn in `queue`.
    flows: HashMap<FlowKey, (Arc<ServedFlow>, SystemTime)>,
    /// The list of flows last followed (its address): followed again only when it changes.
    list: usize,
    /// The `now` of the last look: a clock set back before it makes every flow due once.
    latest: Option<SystemTime>,
}

impl Agenda {
    /// Brings the agenda in step with the flows served: a flow new or deployed again has its
    /// turn at `now`, a flow no longer served leaves it. Nothing to do while the list is the
    /// one followed last. The flows new or deployed again, and those served no more.
    pub fn follow(&mut self, list: &Arc<Vec<Arc<ServedFlow>>>, now: SystemTime) -> Followed {
        let address = Arc::as_ptr(list) as usize;
        if address == self.list {
            return Followed::default();
        }
        let mut fresh = Vec::new();
        self.list = address;
        let mut flows = HashMap::with_capacity(list.len());
        for served in list.iter() {
            let key = served.key();
            let when = match self.flows.remove(key) {
                Some((known, when)) if Arc::ptr_eq(&known, served) => when,
                Some((_, when)) => {
                    self.queue.remove(&(when, key.clone()));
                    self.queue.insert((now, key.clone()));
                    fresh.push(Arc::clone(served));
                    now
                }
                None => {
                    self.queue.insert((now, key.clone()));
                    fresh.push(Arc::clone(served));
                    now
                }
            };
            flows.insert(key.clone(), (Arc::clone(served), when));
        }
        // What is left is served no more.
        let mut gone = Vec::new();
        for (key, (served, when)) in self.flows.drain() {
            self.queue.remove(&(when, key));
            gone.push(served);
        }
        self.flows = flows;
        Followed { fresh, gone }
    }

    /// The flow served under `key`.
    pub fn served(&self, key: &FlowKey) -> Option<&Arc<ServedFlow>> {
        self.flows.get(key).map(|(served, _)| served)
    }

    /// Puts `key`'s next turn at `when`, in place of the one it had.
    pub fn set(&mut self, key: &FlowKey, when: SystemTime) {
        if let Some((_, at)) = self.flows.get_mut(key) {
            self.queue.remove(&(*at, key.clone()));
            *at = when;
            self.queue.insert((when, key.clone()));
        }
    }

    /// The flows whose turn is due at `now`, in the order they fell due. They stay on the
    /// agenda at `now` until [`Agenda::set`] says when their next turn is.
    pub fn due(&mut self, now: SystemTime) -> Vec<Arc<ServedFlow>> {
        let set_back = self.latest.is_some_and(|latest| now < latest);
        self.latest = Some(now);
        if set_back {
            // The clock went back: times on the agenda may be far off; everyone looks again.
            let keys: Vec<FlowKey> = self.flows.keys().cloned().collect();
            for key in keys {
                self.set(&key, now);
            }
        }
        self.queue
            .iter()
            .take_while(|(when, _)| *when <= now)
            .filter_map(|(_, key)| self.served(key).cloned())
            .collect()
    }

    /// When the first turn after `now` is, if any.
    pub fn next_after(&self, now: SystemTime) -> Option<SystemTime> {
        self.queue
            .iter()
            .map(|(when, _)| *when)
            .find(|when| *when > now)
    }
}
