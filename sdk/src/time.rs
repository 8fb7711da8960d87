//! Timestamps as vendors write them: RFC 3339 text to and from Unix epoch milliseconds, and
//! the host's wall clock. Connectors need these for watermarks (`SystemModstamp`,
//! `lastmodifieddate`), epoch-millisecond filters and webhook timestamp checks.

/// Milliseconds since the Unix epoch now, from the host's wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses `2025-01-31T12:34:56Z`, `…56.789Z`, `…56.789+0000` or `…56+02:00` (a date alone is
/// midnight UTC) into epoch milliseconds; `None` when the text is not such a timestamp.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let s = text.trim().as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(part).ok()?.parse().ok())?
    };
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    if s.len() == 10 {
        return Some(ms);
    }
    if !matches!(s[10], b'T' | b't' | b' ') || s.len() < 19 || s[13] != b':' || s[16] != b':' {
        return None;
    }
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    ms += ((hour * 60 + minute) * 60 + second) * 1_000;
    let mut pos = 19;
    if s.get(pos) == Some(&b'.') {
        let start = pos + 1;
        pos = start;
        while pos < s.len() && s[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        let frac = std::str::from_utf8(&s[start..pos.min(start + 3)]).ok()?;
        ms += format!("{frac:0<3}").parse::<i64>().ok()?;
    }
    let offset_minutes = match &s[pos..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (h, m) = match rest {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (
                    std::str::from_utf8(&[*h1, *h2]).ok()?.parse::<i64>().ok()?,
                    std::str::from_utf8(&[*m1, *m2]).ok()?.parse::<i64>().ok()?,
                ),
                _ => return None,
            };
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    Some(ms - offset_minutes * 60_000)
}

/// `2025-01-31T12:34:56.789Z` for epoch milliseconds `ms`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1_000 % 60,
        rest % 1_000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

// Howard Hinnant's civil-calendar algorithms, proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_vendors_write() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T10:00:00.000Z"),
            Some(1_714_557_600_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T10:00:00.123+0000"),
            Some(1_714_557_600_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-05-01T12:00:00+02:00"),
            Some(1_714_557_600_000)
        );
        assert_eq!(parse_rfc3339_ms("2024-05-01"), Some(1_714_521_600_000));
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-05-01T10:00",
            "2024-05-01T10:00:00",
            "2024-05-01T10:00:00Zjunk",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_and_round_trips() {
        assert_eq!(
            format_rfc3339_ms(1_714_557_600_123),
            "2024-05-01T10:00:00.123Z"
        );
        for ms in [0, 951_782_400_000, 1_735_689_600_000, 4_102_444_800_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
    }
}
