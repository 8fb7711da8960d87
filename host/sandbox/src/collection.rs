//! One object type's records (Zoho Leads, Zendesk tickets, ...): demo records generated on
//! demand plus an overlay of everything written since, plus tombstones of deletions. Indices
//! are positions in creation order; each emulator maps them to its vendor's ID format.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value};

pub(crate) type Fields = Map<String, Value>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub fields: Fields,
    pub created_ms: i64,
    pub modified_ms: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Tombstone {
    pub deleted_ms: i64,
    /// The record as it was, so deletion feeds can show names.
    pub last: Record,
}

/// A position in modification order: `(modified_ms, index)`, a total order.
pub(crate) type ChangeKey = (i64, u64);

#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub key: ChangeKey,
    pub index: u64,
    pub deleted: bool,
}

type Generator = Arc<dyn Fn(u64) -> Fields + Send + Sync>;
type Times = Arc<dyn Fn(u64) -> (i64, i64) + Send + Sync>;

/// Cloning copies the overlay only (demo records stay generated), so snapshots are cheap;
/// Dataverse uses them to roll back failed changesets.
#[derive(Clone)]
pub(crate) struct Collection {
    generator: Generator,
    times: Times,
    generated: u64,
    next: u64,
    overlay: BTreeMap<u64, Record>,
    deleted: BTreeMap<u64, Tombstone>,
    /// Built on first lookup by a field (upsert keys, email search), then kept up to date.
    indexes: HashMap<String, HashMap<u64, Vec<u64>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Asc,
    Desc,
}

impl Collection {
    pub(crate) fn new(
        generated: u64,
        generator: impl Fn(u64) -> Fields + Send + Sync + 'static,
        times: impl Fn(u64) -> (i64, i64) + Send + Sync + 'static,
    ) -> Self {
        Self {
            generator: Arc::new(generator),
            times: Arc::new(times),
            generated,
            next: generated,
            overlay: BTreeMap::new(),
            deleted: BTreeMap::new(),
            indexes: HashMap::new(),
        }
    }

    /// Live records.
    pub(crate) fn len(&self) -> u64 {
        self.next - self.deleted.len() as u64
    }

    /// One past the highest index ever used.
    pub(crate) fn end(&self) -> u64 {
        self.next
    }

    pub(crate) fn is_live(&self, i: u64) -> bool {
        i < self.next && !self.deleted.contains_key(&i)
    }

    pub(crate) fn get(&self, i: u64) -> Option<Record> {
        if !self.is_live(i) {
            return None;
        }
        Some(self.get_unchecked(i))
    }

    fn get_unchecked(&self, i: u64) -> Record {
        if let Some(r) = self.overlay.get(&i) {
            return r.clone();
        }
        let (created_ms, modified_ms) = (self.times)(i);
        Record {
            fields: (self.generator)(i),
            created_ms,
            modified_ms,
        }
    }

    pub(crate) fn tombstones(&self) -> impl Iterator<Item = (u64, &Tombstone)> + '_ {
        self.deleted.iter().map(|(i, t)| (*i, t))
    }

    /// Modification time without generating the record.
    pub(crate) fn modified_ms(&self, i: u64) -> Option<i64> {
        if !self.is_live(i) {
            return None;
        }
        Some(
            self.overlay
                .get(&i)
                .map(|r| r.modified_ms)
                .unwrap_or_else(|| (self.times)(i).1),
        )
    }

    pub(crate) fn insert(&mut self, fields: Fields, now_ms: i64) -> u64 {
        let i = self.next;
        self.next += 1;
        self.reindex(i, None, Some(&fields));
        self.overlay.insert(
            i,
            Record {
                fields,
                created_ms: now_ms,
                modified_ms: now_ms,
            },
        );
        i
    }

    /// Replaces a live record's fields; returns false if there is no such record.
    pub(crate) fn replace(&mut self, i: u64, fields: Fields, now_ms: i64) -> bool {
        let Some(old) = self.get(i) else { return false };
        self.reindex(i, Some(&old.fields), Some(&fields));
        self.overlay.insert(
            i,
            Record {
                fields,
                created_ms: old.created_ms,
                modified_ms: now_ms.max(old.modified_ms + 1),
            },
        );
        true
    }

    /// Merges `changes` into a live record (a JSON null removes nothing: it stores null, as
    /// vendors do when a field is cleared).
    pub(crate) fn merge(&mut self, i: u64, changes: &Fields, now_ms: i64) -> Option<Record> {
        let mut rec = self.get(i)?;
        for (k, v) in changes {
            rec.fields.insert(k.clone(), v.clone());
        }
        self.replace(i, rec.fields, now_ms);
        self.get(i)
    }

    pub(crate) fn delete(&mut self, i: u64, now_ms: i64) -> bool {
        let Some(old) = self.get(i) else { return false };
        self.reindex(i, Some(&old.fields), None);
        self.overlay.remove(&i);
        self.deleted.insert(
            i,
            Tombstone {
                deleted_ms: now_ms,
                last: old,
            },
        );
        true
    }

    /// Live indices in index order, strictly after `after` when given.
    pub(crate) fn scan(&self, dir: Dir, after: Option<u64>) -> impl Iterator<Item = u64> + '_ {
        let (mut lo, mut hi) = (0u64, self.next); // half-open [lo, hi)
        match (dir, after) {
            (Dir::Asc, Some(a)) => lo = a.saturating_add(1).min(self.next),
            (Dir::Desc, Some(a)) => hi = a.min(self.next),
            _ => {}
        }
        let mut cur_lo = lo;
        let mut cur_hi = hi;
        std::iter::from_fn(move || {
            loop {
                if cur_lo >= cur_hi {
                    return None;
                }
                let i = match dir {
                    Dir::Asc => {
                        cur_lo += 1;
                        cur_lo - 1
                    }
                    Dir::Desc => {
                        cur_hi -= 1;
                        cur_hi
                    }
                };
                if !self.deleted.contains_key(&i) {
                    return Some(i);
                }
            }
        })
    }

    /// First base index whose demo modification time is after `t_ms`; base records below it
    /// were not modified after `t_ms` unless the overlay holds a newer version.
    fn first_base_modified_after(&self, t_ms: i64, after_index: Option<u64>) -> u64 {
        let (mut lo, mut hi) = (0u64, self.generated);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let key = ((self.times)(mid).1, mid);
            let beyond = match after_index {
                Some(ai) => key > (t_ms, ai),
                None => key.0 > t_ms,
            };
            if beyond { hi = mid } else { lo = mid + 1 }
        }
        lo
    }

    /// Whether a live record was modified after `t_ms`, without generating it.
    pub(crate) fn modified_after(&self, i: u64, t_ms: i64) -> bool {
        self.modified_ms(i).is_some_and(|m| m > t_ms)
    }

    /// Live indices modified after `t_ms`, in index order, skipping unmodified demo records
    /// without generating them.
    pub(crate) fn scan_modified_after(
        &self,
        dir: Dir,
        after: Option<u64>,
        t_ms: i64,
    ) -> impl Iterator<Item = u64> + '_ {
        let base_start = self.first_base_modified_after(t_ms, None);
        let overlay_below: Vec<u64> = self
            .overlay
            .range(..base_start)
            .filter(|(_, r)| r.modified_ms > t_ms)
            .map(|(i, _)| *i)
            .collect();
        let tail_start = base_start;
        let after_ok = move |i: u64| match (dir, after) {
            (Dir::Asc, Some(a)) => i > a,
            (Dir::Desc, Some(a)) => i < a,
            _ => true,
        };
        // Start where the caller left off, so deep pages do not rescan what came before.
        let tail: Box<dyn Iterator<Item = u64> + '_> = match dir {
            Dir::Asc => {
                let start = match (after, tail_start.checked_sub(1)) {
                    (Some(a), Some(t)) => Some(a.max(t)),
                    (a, t) => a.or(t),
                };
                Box::new(self.scan(Dir::Asc, start))
            }
            Dir::Desc => Box::new(
                self.scan(Dir::Desc, after)
                    .take_while(move |i| *i >= tail_start),
            ),
        };
        let head = overlay_below.into_iter();
        let iter: Box<dyn Iterator<Item = u64> + '_> = match dir {
            Dir::Asc => Box::new(head.chain(tail)),
            Dir::Desc => Box::new(tail.chain(head.rev())),
        };
        iter.filter(move |i| after_ok(*i) && self.modified_after(*i, t_ms))
    }

    /// Changes (live records and, if asked, deletions) strictly after `cursor` in modification
    /// order, oldest first, at most `limit`, none at or after `until_ms`.
    pub(crate) fn changes_after(
        &self,
        cursor: ChangeKey,
        until_ms: i64,
        include_deleted: bool,
        limit: usize,
    ) -> Vec<Change> {
        let mut extra: Vec<Change> = self
            .overlay
            .iter()
            .filter(|(i, r)| (r.modified_ms, **i) > cursor && r.modified_ms < until_ms)
            .map(|(i, r)| Change {
                key: (r.modified_ms, *i),
                index: *i,
                deleted: false,
            })
            .collect();
        if include_deleted {
            extra.extend(
                self.deleted
                    .iter()
                    .filter(|(i, t)| (t.deleted_ms, **i) > cursor && t.deleted_ms < until_ms)
                    .map(|(i, t)| Change {
                        key: (t.deleted_ms, *i),
                        index: *i,
                        deleted: true,
                    }),
            );
        }
        extra.sort_by_key(|c| c.key);
        let mut out = Vec::with_capacity(limit.min(4_096));
        let mut extra = extra.into_iter().peekable();
        let mut base = self.first_base_modified_after(cursor.0, Some(cursor.1));
        while out.len() < limit {
            // Next untouched demo record.
            while base < self.generated
                && (self.overlay.contains_key(&base) || self.deleted.contains_key(&base))
            {
                base += 1;
            }
            let base_key = (base < self.generated)
                .then(|| ((self.times)(base).1, base))
                .filter(|k| k.0 < until_ms);
            let take_extra = match (extra.peek(), base_key) {
                (Some(e), Some(b)) => e.key < b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_extra {
                out.push(extra.next().expect("peeked"));
            } else {
                let key = base_key.expect("checked");
                out.push(Change {
                    key,
                    index: base,
                    deleted: false,
                });
                base += 1;
            }
        }
        out
    }

    /// Live records whose `field` equals `value` (strings compare case-insensitively).
    pub(crate) fn find(&mut self, field: &str, value: &Value) -> Vec<u64> {
        let Some(h) = index_key(value) else {
            return Vec::new();
        };
        if !self.indexes.contains_key(field) {
            let mut idx: HashMap<u64, Vec<u64>> = HashMap::new();
            for i in self.scan(Dir::Asc, None).collect::<Vec<_>>() {
                let rec = self.get_unchecked(i);
                if let Some(k) = rec.fields.get(field).and_then(index_key) {
                    idx.entry(k).or_default().push(i);
                }
            }
            self.indexes.insert(field.to_string(), idx);
        }
        let candidates = self.indexes[field].get(&h).cloned().unwrap_or_default();
        candidates
            .into_iter()
            .filter(|i| {
                self.get(*i)
                    .and_then(|r| r.fields.get(field).map(|v| same_value(v, value)))
                    .unwrap_or(false)
            })
            .collect()
    }

    fn reindex(&mut self, i: u64, old: Option<&Fields>, new: Option<&Fields>) {
        for (field, idx) in self.indexes.iter_mut() {
            if let Some(k) = old.and_then(|f| f.get(field)).and_then(index_key)
                && let Some(list) = idx.get_mut(&k)
            {
                list.retain(|x| *x != i);
            }
            if let Some(k) = new.and_then(|f| f.get(field)).and_then(index_key) {
                idx.entry(k).or_default().push(i);
            }
        }
    }
}

fn normalized(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn index_key(v: &Value) -> Option<u64> {
    let s = normalized(v)?;
    if s.is_empty() {
        return None;
    }
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    Some(h.finish())
}

pub(crate) fn same_value(a: &Value, b: &Value) -> bool {
    match (normalized(a), normalized(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn numbers(n: u64) -> Collection {
        Collection::new(
            n,
            |i| {
                json!({"n": i, "email": format!("p{i}@x.example")})
                    .as_object()
                    .cloned()
                    .unwrap()
            },
            |i| (1_000 + i as i64 * 10, 1_005 + i as i64 * 10),
        )
    }

    #[test]
    fn scan_skips_deleted_both_ways() {
        let mut c = numbers(5);
        c.delete(2, 5_000);
        assert_eq!(c.scan(Dir::Asc, None).collect::<Vec<_>>(), [0, 1, 3, 4]);
        assert_eq!(c.scan(Dir::Desc, Some(4)).collect::<Vec<_>>(), [3, 1, 0]);
        assert_eq!(c.scan(Dir::Asc, Some(1)).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn changes_merge_demo_and_written_records_in_time_order() {
        let mut c = numbers(5);
        c.merge(1, json!({"n": 100}).as_object().unwrap(), 9_000);
        c.delete(3, 9_500);
        let all = c.changes_after((0, 0), i64::MAX, true, 100);
        let idx: Vec<(u64, bool)> = all.iter().map(|c| (c.index, c.deleted)).collect();
        assert_eq!(
            idx,
            [(0, false), (2, false), (4, false), (1, false), (3, true)]
        );
        let after = c.changes_after(all[1].key, i64::MAX, false, 2);
        assert_eq!(after.iter().map(|c| c.index).collect::<Vec<_>>(), [4, 1]);
        assert!(
            c.changes_after((0, 0), 1_021, false, 100)
                .iter()
                .all(|c| c.key.0 < 1_021)
        );
    }

    #[test]
    fn find_tracks_writes() {
        let mut c = numbers(3);
        assert_eq!(c.find("email", &json!("P1@x.example")), [1]);
        c.merge(
            1,
            json!({"email": "new@x.example"}).as_object().unwrap(),
            9_000,
        );
        assert!(c.find("email", &json!("p1@x.example")).is_empty());
        assert_eq!(c.find("email", &json!("new@x.example")), [1]);
        let i = c.insert(
            json!({"email": "p1@x.example"})
                .as_object()
                .cloned()
                .unwrap(),
            9_100,
        );
        assert_eq!(c.find("email", &json!("p1@x.example")), [i]);
    }

    #[test]
    fn modified_after_scan_finds_overlay_and_tail() {
        let mut c = numbers(10);
        c.merge(1, json!({"n": 5}).as_object().unwrap(), 50_000);
        // base modified times: 1005, 1015, ... ; after 1_060 -> indices 6..9 plus 1.
        let asc: Vec<u64> = c.scan_modified_after(Dir::Asc, None, 1_060).collect();
        assert_eq!(asc, [1, 6, 7, 8, 9]);
        let desc: Vec<u64> = c.scan_modified_after(Dir::Desc, None, 1_060).collect();
        assert_eq!(desc, [9, 8, 7, 6, 1]);
        let after: Vec<u64> = c.scan_modified_after(Dir::Asc, Some(6), 1_060).collect();
        assert_eq!(after, [7, 8, 9]);
        let after: Vec<u64> = c.scan_modified_after(Dir::Desc, Some(8), 1_060).collect();
        assert_eq!(after, [7, 6, 1]);
        let after: Vec<u64> = c.scan_modified_after(Dir::Asc, Some(0), 1_060).collect();
        assert_eq!(after, [1, 6, 7, 8, 9]);
    }
}
