//! Quotas per tenant: the server's defaults (`weft serve --quota NAME=VALUE`), over which the
//! operator sets a tenant's own (`weft tenant quota`, `PUT /api/v1/tenants/{tenant}/quotas`).
//! A quota not set is no limit.
//!
//! Counted quotas are per clock hour or UTC day, from what runs recorded they used
//! (`Store::usage_sum`): a tenant over one has its due runs refused, each recorded as a
//! `refused` run saying which quota, its limit and when it resets, and its flows rest until
//! then; webhook events wait for that. A run under way is stopped after the page that takes
//! its tenant over one (what ended before it started, plus what it used itself so far; other
//! runs under way at once are not counted until they end), also `refused`. `concurrent_runs` is not a refusal: a run over it waits
//! for one of the tenant's runs to end.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use weft_store::{RunUsage, Store, StoreError};

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quota {
    /// Runs of the tenant at once.
    ConcurrentRuns,
    /// Runs started in a clock hour.
    RunsPerHour,
    /// Plugin CPU milliseconds in a clock hour.
    CpuMsPerHour,
    /// Requests connections sent in a clock hour.
    RequestsPerHour,
    /// Request and response bytes in a clock hour.
    BytesPerHour,
    /// Records read and written in a UTC day.
    RecordsPerDay,
    /// Flows deployed at once.
    Flows,
    /// Bytes of one plugin uploaded (at most the server's own limit, 16 MiB).
    PluginBytes,
    /// Records the tenant's datasets hold in all, checked when a run starts.
    DatasetRows,
}

const HOUR: Duration = Duration::from_secs(3_600);

/// When a tenant over its quota of dataset rows is tried again (its records may have been
/// deleted meanwhile).
const DATASET_ROWS_RETRY: Duration = Duration::from_secs(300);
const DAY: Duration = Duration::from_secs(86_400);

impl Quota {
    pub const ALL: [Quota; 9] = [
        Quota::ConcurrentRuns,
        Quota::RunsPerHour,
        Quota::CpuMsPerHour,
        Quota::RequestsPerHour,
        Quota::BytesPerHour,
        Quota::RecordsPerDay,
        Quota::Flows,
        Quota::PluginBytes,
        Quota::DatasetRows,
    ];

    /// Its name, as settings and messages write it.
    pub fn name(self) -> &'static str {
        match self {
            Quota::ConcurrentRuns => "concurrent_runs",
            Quota::RunsPerHour => "runs_per_hour",
            Quota::CpuMsPerHour => "cpu_ms_per_hour",
            Quota::RequestsPerHour => "requests_per_hour",
            Quota::BytesPerHour => "bytes_per_hour",
            Quota::RecordsPerDay => "records_per_day",
            Quota::Flows => "flows",
            Quota::PluginBytes => "plugin_bytes",
            Quota::DatasetRows => "dataset_rows",
        }
    }

    pub fn parse(name: &str) -> Option<Quota> {
        Quota::ALL.into_iter().find(|q| q.name() == name)
    }

    /// The window it counts in, for the counted ones.
    fn window(self) -> Option<Duration> {
        match self {
            Quota::RunsPerHour
            | Quota::CpuMsPerHour
            | Quota::RequestsPerHour
            | Quota::BytesPerHour => Some(HOUR),
            Quota::RecordsPerDay => Some(DAY),
            Quota::ConcurrentRuns | Quota::Flows | Quota::PluginBytes | Quota::DatasetRows => None,
        }
    }

    /// How much of it `runs` runs that used `usage` took.
    fn used(self, runs: u64, usage: &RunUsage) -> u64 {
        match self {
            Quota::RunsPerHour => runs,
            Quota::CpuMsPerHour => usage.cpu_ms,
            Quota::RequestsPerHour => usage.requests,
            Quota::BytesPerHour => usage.bytes_in.saturating_add(usage.bytes_out),
            Quota::RecordsPerDay => usage.records_read.saturating_add(usage.records_written),
            Quota::ConcurrentRuns | Quota::Flows | Quota::PluginBytes | Quota::DatasetRows => 0,
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits by quota; a quota absent is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotas {
    limits: BTreeMap<Quota, u64>,
}

impl Quotas {
    pub fn set(&mut self, quota: Quota, limit: u64) {
        self.limits.insert(quota, limit);
    }

    pub fn get(&self, quota: Quota) -> Option<u64> {
        self.limits.get(&quota).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Quota, u64)> + '_ {
        self.limits.iter().map(|(q, v)| (*q, *v))
    }

    /// `NAME=VALUE`, as `--quota` takes it.
    pub fn parse_setting(text: &str) -> Result<(Quota, u64), String> {
        let names = || {
            Quota::ALL
                .iter()
                .map(|q| q.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not NAME=VALUE (quotas: {})", names()))?;
        let quota = Quota::parse(name)
            .ok_or_else(|| format!("no quota `{name}`; the quotas are {}", names()))?;
        let value = value
            .parse()
            .map_err(|_| format!("the value of quota `{name}` is a whole number, not `{value}`"))?;
        Ok((quota, value))
    }

    /// These defaults with a tenant's own quotas (as the store keeps them) over them; names
    /// this weft does not know are ignored.
    pub fn with_overrides(&self, overrides: &[(String, u64)]) -> Quotas {
        let mut quotas = self.clone();
        for (name, value) in overrides {
            if let Some(quota) = Quota::parse(name) {
                quotas.set(quota, *value);
            }
        }
        quotas
    }

    /// The tenant's quotas: these defaults with its own over them.
    pub async fn of(&self, store: &Store, tenant: &str) -> Result<Quotas, StoreError> {
        Ok(self.with_overrides(&store.quotas(tenant).await?))
    }
}

/// How long a tenant's quotas as read from the store are used before they are read again
/// (at once when this process's API changed something).
const QUOTAS_KEPT: Duration = Duration::from_secs(5);

/// Each tenant's quotas as last read: a server starting runs for hundreds of tenants a second
/// asks the store once per tenant every [`QUOTAS_KEPT`], not once per run started.
#[derive(Debug, Default)]
pub(crate) struct QuotaBook {
    /// Every tenant's quotas, unless the store holds its own.
    pub defaults: Quotas,
    read: std::collections::HashMap<String, (Quotas, SystemTime)>,
}

impl QuotaBook {
    /// `tenant`'s quotas at `now`.
    pub async fn of(
        &mut self,
        store: &Store,
        tenant: &str,
        now: SystemTime,
    ) -> Result<Quotas, StoreError> {
        if let Some((quotas, at)) = self.read.get(tenant)
            && *at <= now
            && now < *at + QUOTAS_KEPT
        {
            return Ok(quotas.clone());
        }
        let quotas = self.defaults.of(store, tenant).await?;
        self.read.insert(tenant.to_owned(), (quotas.clone(), now));
        Ok(quotas)
    }

    /// Reads every tenant's quotas again when next needed.
    pub fn forget(&mut self) {
        self.read.clear();
    }
}

/// A counted quota a tenant reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: Quota,
    pub limit: u64,
    pub used: u64,
    /// When its window ends, and the count starts again.
    pub resets_at: SystemTime,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = humantime::format_rfc3339_seconds(self.resets_at);
        let (quota, used, limit) = (self.quota, self.used, self.limit);
        write!(
            f,
            "the tenant reached its quota {quota} ({used} used of {limit}); "
        )?;
        if quota.window().is_some() {
            write!(f, "it resets at {at}")
        } else {
            write!(
                f,
                "delete records of its datasets or ask the operator for more; tried again at {at}"
            )
        }
    }
}

/// The start of the window of `length` that `now` is in (clock hours, UTC days).
fn window_start(now: SystemTime, length: Duration) -> SystemTime {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let whole = since.as_secs() / length.as_secs() * length.as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(whole)
}

/// What a tenant used in the windows its counted quotas count in, read at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tally {
    /// By window length in seconds: the window's start, the runs started in it and what they
    /// used.
    windows: BTreeMap<u64, (SystemTime, u64, RunUsage)>,
    /// The records its datasets held, when a quota counts them.
    dataset_rows: Option<u64>,
}

impl Tally {
    /// What the tenant used in each window of `quotas` at `now`: one store query per window
    /// length in use.
    pub(crate) async fn read(
        store: &Store,
        tenant: &str,
        quotas: &Quotas,
        now: SystemTime,
    ) -> Result<Tally, StoreError> {
        let mut windows = BTreeMap::new();
        for (quota, _) in quotas.iter() {
            let Some(length) = quota.window() else {
                continue;
            };
            if windows.contains_key(&length.as_secs()) {
                continue;
            }
            let start = window_start(now, length);
            let (runs, usage) = store
                .usage_sum(tenant, start, now + Duration::from_millis(1))
                .await?;
            windows.insert(length.as_secs(), (start, runs, usage));
        }
        let dataset_rows = match quotas.get(Quota::DatasetRows) {
            Some(_) => Some(store.dataset_rows(tenant).await?),
            None => None,
        };
        Ok(Tally {
            windows,
            dataset_rows,
        })
    }

    /// The first counted quota in `quotas` reached with `more` used on top of the tally (a run
    /// under way), at `now`. A window that ended since the tally counts nothing.
    pub(crate) fn exceeded(
        &self,
        quotas: &Quotas,
        more: &RunUsage,
        now: SystemTime,
    ) -> Option<Exceeded> {
        quotas.iter().find_map(|(quota, limit)| {
            if quota == Quota::DatasetRows {
                // What a run writes to datasets is not told apart from its other writes: the
                // rows count as they were when it started.
                let used = self.dataset_rows?;
                return (used >= limit).then_some(Exceeded {
                    quota,
                    limit,
                    used,
                    resets_at: now + DATASET_ROWS_RETRY,
                });
            }
            let length = quota.window()?;
            let (start, runs, usage) = self.windows.get(&length.as_secs())?;
            let resets_at = *start + length;
            if now >= resets_at {
                return None;
            }
            let used = quota.used(*runs, &plus(usage, more));
            (used >= limit).then_some(Exceeded {
                quota,
                limit,
                used,
                resets_at,
            })
        })
    }
}

/// `a` and `b` used together.
fn plus(a: &RunUsage, b: &RunUsage) -> RunUsage {
    RunUsage {
        cpu_ms: a.cpu_ms.saturating_add(b.cpu_ms),
        requests: a.requests.saturating_add(b.requests),
        bytes_out: a.bytes_out.saturating_add(b.bytes_out),
        bytes_in: a.bytes_in.saturating_add(b.bytes_in),
        peak_memory: a.peak_memory.max(b.peak_memory),
        records_read: a.records_read.saturating_add(b.records_read),
        records_written: a.records_written.saturating_add(b.records_written),
        records_failed: a.records_failed.saturating_add(b.records_failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_with_their_mistakes_said() {
        assert_eq!(
            Quotas::parse_setting("runs_per_hour=60"),
            Ok((Quota::RunsPerHour, 60))
        );
        let unknown = Quotas::parse_setting("runs=60").unwrap_err();
        assert!(unknown.contains("no quota `runs`") && unknown.contains("runs_per_hour"));
        assert!(
            Quotas::parse_setting("flows=many")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            Quotas::parse_setting("flows")
                .unwrap_err()
                .contains("NAME=VALUE")
        );
    }

    #[test]
    fn a_tenants_own_quotas_go_over_the_defaults() {
        let mut defaults = Quotas::default();
        defaults.set(Quota::RunsPerHour, 60);
        defaults.set(Quota::Flows, 10);
        let own = defaults
            .with_overrides(&[("runs_per_hour".into(), 5), ("from_a_newer_weft".into(), 1)]);
        assert_eq!(own.get(Quota::RunsPerHour), Some(5));
        assert_eq!(own.get(Quota::Flows), Some(10));
        assert_eq!(own.get(Quota::CpuMsPerHour), None);
    }

    #[test]
    fn a_run_under_way_counts_on_top_of_what_its_tenant_used_until_the_window_ends() {
        let hour = SystemTime::UNIX_EPOCH + Duration::from_secs(3_600 * 100);
        let before = RunUsage {
            requests: 90,
            records_read: 10,
            ..RunUsage::default()
        };
        let tally = Tally {
            dataset_rows: None,
            windows: BTreeMap::from([
                (HOUR.as_secs(), (hour, 4, before)),
                (DAY.as_secs(), (window_start(hour, DAY), 4, before)),
            ]),
        };
        let mut quotas = Quotas::default();
        quotas.set(Quota::RequestsPerHour, 100);
        quotas.set(Quota::RunsPerHour, 5);
        let now = hour + Duration::from_secs(60);
        let none = RunUsage::default();
        assert_eq!(tally.exceeded(&quotas, &none, now), None);
        let under = RunUsage {
            requests: 9,
            ..none
        };
        assert_eq!(tally.exceeded(&quotas, &under, now), None);
        let at = RunUsage {
            requests: 10,
            ..none
        };
        assert_eq!(
            tally.exceeded(&quotas, &at, now),
            Some(Exceeded {
                quota: Quota::RequestsPerHour,
                limit: 100,
                used: 100,
                resets_at: hour + HOUR,
            })
        );
        // Past the hour the tally was of, it counts nothing: the run goes on.
        assert_eq!(tally.exceeded(&quotas, &at, hour + HOUR), None);
        // The runs of the hour are what they were when the run started: it is not counted
        // against itself.
        quotas.set(Quota::RunsPerHour, 4);
        assert_eq!(
            tally.exceeded(&quotas, &none, now).map(|e| e.quota),
            Some(Quota::RunsPerHour)
        );
    }

    #[test]
    fn windows_are_clock_hours_and_utc_days() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3_600 * 5 + 125);
        assert_eq!(
            window_start(t, HOUR),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3 + 3_600 * 5)
        );
        assert_eq!(
            window_start(t, DAY),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 3)
        );
    }
}
