//! When scheduled flows are due.

use std::time::{Duration, SystemTime};

use weft_flow::Flow;
use weft_flow::model::Schedule;

/// When `flow` is next due given when it last started, or `None` if it is not scheduled
/// (manual, webhook-triggered, or only chained after other flows). A scheduled flow that never
/// ran is due at once: the first run is the full sync, the schedule follows.
pub fn next_due(
    flow: &Flow,
    last_started: Option<SystemTime>,
    now: SystemTime,
) -> Option<SystemTime> {
    let trigger = flow.file.trigger.as_ref()?.get_ref();
    let schedule = trigger
        .schedule
        .as_ref()
        .or(trigger.poll.as_ref())?
        .get_ref();
    let Some(last) = last_started else {
        return Some(now);
    };
    due_after(schedule, last)
}

/// Whether a cron expression (range-checked by the flow file's validation) matches no date in
/// the next five years.
pub fn never_fires(expression: &str) -> bool {
    let Ok(cron) = expression.parse::<croner::Cron>() else {
        return true;
    };
    let now = chrono::Utc::now();
    match cron.find_next_occurrence(&now, false) {
        Ok(next) => next > now + chrono::Duration::days(5 * 366),
        Err(_) => true,
    }
}

fn due_after(schedule: &Schedule, last: SystemTime) -> Option<SystemTime> {
    if let Some(every) = &schedule.every {
        return Some(last + every.get_ref().0);
    }
    let cron: croner::Cron = schedule.cron.as_ref()?.get_ref().0.parse().ok()?;
    let last: chrono::DateTime<chrono::Utc> = last.into();
    let next = cron.find_next_occurrence(&last, false).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(next.timestamp_millis().max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn flow(trigger: &str) -> Flow {
        let text = format!(
            "name = \"f\"\n{trigger}\n[connections.c]\nplugin = \"dataset\"\n[[steps]]\nid = \"s\"\nread = {{ connection = \"c\", stream = \"x\" }}\n"
        );
        weft_flow::parse(Path::new("f.toml"), &text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn first_run_is_due_at_once_then_every_interval() {
        let f = flow("[trigger]\nschedule = { every = \"4h\" }");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(next_due(&f, None, now), Some(now));
        assert_eq!(
            next_due(&f, Some(now), now),
            Some(now + Duration::from_secs(4 * 3600))
        );
    }

    #[test]
    fn cron_schedules_follow_the_expression() {
        let f = flow("[trigger]\nschedule = { cron = \"0 */4 * * *\" }");
        // 1970-01-12 13:46:40 UTC: next is 16:00.
        let last = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let next = next_due(&f, Some(last), last).unwrap();
        assert_eq!(
            next.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_000_000 - 13 * 3600 - 46 * 60 - 40 + 16 * 3600
        );
    }

    #[test]
    fn a_schedule_matching_no_date_never_fires() {
        assert!(never_fires("0 0 30 2 *"));
        assert!(
            !never_fires("0 0 29 2 *"),
            "a leap day comes within five years"
        );
        assert!(!never_fires("*/5 * * * *"));
    }

    #[test]
    fn manual_flows_are_never_due() {
        assert_eq!(next_due(&flow(""), None, SystemTime::now()), None);
        assert_eq!(
            next_due(&flow("[trigger]\nmanual = true"), None, SystemTime::now()),
            None
        );
    }
}
