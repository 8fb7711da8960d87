//! The sandbox's notion of "now". Tests advance it through the admin API to reach token,
//! channel, cursor and referral expiries without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub(crate) fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall + self.offset_ms.load(Ordering::Relaxed)
    }

    pub(crate) fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parts of a timestamp shifted by `offset_minutes`.
fn parts(ms: i64, offset_minutes: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let local = ms + offset_minutes * 60_000;
    let secs = local.div_euclid(1_000);
    let millis = local.rem_euclid(1_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (y, mo, d, sod / 3_600, sod % 3_600 / 60, sod % 60, millis)
}

/// `2026-05-01T10:00:00Z`
pub(crate) fn rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms, 0);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-05-01T10:00:00.000Z` (HubSpot, Salesforce with `+0000` via `salesforce_time`).
pub(crate) fn rfc3339_millis(ms: i64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms, 0);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2026-05-01T10:00:00+05:30`, Zoho's format with the org's offset.
pub(crate) fn with_offset(ms: i64, offset_minutes: i64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms, offset_minutes);
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let off = offset_minutes.abs();
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
        off / 60,
        off % 60
    )
}

/// `2026-05-01`
pub(crate) fn date(ms: i64) -> String {
    let (y, mo, d, ..) = parts(ms, 0);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Parses ISO-8601 date-times as vendors and their clients write them: `2026-05-01T10:00:00Z`,
/// with fractional seconds, with `+05:30`/`+0530` offsets, or a bare date (midnight UTC).
pub(crate) fn parse_iso(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let day_ms = days_from_civil(y, mo, d) * 86_400_000;
    if b.len() == 10 {
        return Some(day_ms);
    }
    if b[10] != b'T' && b[10] != b' ' || b.len() < 19 {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut pos = 19;
    let mut millis = 0i64;
    if b.get(pos) == Some(&b'.') {
        let start = pos + 1;
        pos = start;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        let frac = s.get(start..pos)?;
        let padded = format!("{:0<3}", &frac[..frac.len().min(3)]);
        millis = padded.parse().ok()?;
    }
    let rest = &s[pos..];
    let offset_min = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| c.is_ascii_digit()).collect();
            if digits.len() != 4 {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    Some(day_ms + (h * 3_600 + mi * 60 + sec) * 1_000 + millis - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let ms = 1_718_117_126_000;
        assert_eq!(rfc3339(ms), "2024-06-11T14:45:26Z");
        assert_eq!(parse_iso(&rfc3339(ms)), Some(ms));
        assert_eq!(with_offset(ms, 330), "2024-06-11T20:15:26+05:30");
        assert_eq!(parse_iso(&with_offset(ms, 330)), Some(ms));
        assert_eq!(parse_iso("2024-06-11T14:45:26.250+0000"), Some(ms + 250));
        assert_eq!(
            parse_iso("2024-06-11"),
            Some(ms - (14 * 3_600 + 45 * 60 + 26) * 1_000)
        );
        assert_eq!(parse_iso("not a date"), None);
    }
}
