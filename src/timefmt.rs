//! Calendar arithmetic and the two timestamp forms outpost reads and writes:
//! RFC 3339 UTC (`1994-11-06T08:49:37Z`: state, status, JSON, messages) and
//! the HTTP IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`: Retry-After).
//! Pure functions of Unix seconds; the one place for date code. Must not
//! read the clock (callers pass `now` from the `Host` trait).

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of a day count since 1970-01-01 (`civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds of a date and time, or `None` when a field is out of range
/// or the day does not exist in that month (31 Feb).
fn unix_of(y: i64, m: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<u64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let days = u64::try_from(days).ok()?;
    Some(days * 86_400 + u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s))
}

/// `1994-11-06T08:49:37Z` for Unix seconds.
pub fn rfc3339(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / 86_400) as i64);
    let secs = unix % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `1994-11-06 08:49 UTC`: the short form for people (check output).
pub fn utc_minutes(unix: u64) -> String {
    let (y, m, d) = civil_from_days((unix / 86_400) as i64);
    let secs = unix % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60
    )
}

/// Digits only, exactly `n` of them.
fn digits(t: &str, n: usize) -> Option<u32> {
    if t.len() == n && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}

/// Unix seconds from exactly the form `rfc3339` writes.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let f = |r: std::ops::Range<usize>| s.get(r.clone()).and_then(|t| digits(t, r.len()));
    let y = f(0..4)?;
    unix_of(
        i64::from(y),
        f(5..7)?,
        f(8..10)?,
        f(11..13)?,
        f(14..16)?,
        f(17..19)?,
    )
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (IMF-fixdate) for Unix seconds.
pub fn http_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Unix seconds from an IMF-fixdate, the only HTTP-date form a server may
/// send (RFC 9110 section 5.6.7); the obsolete RFC 850 and asctime forms,
/// dates before 1970 and impossible days give `None`.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split(' ').collect();
    let [wd, day, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    if wd.len() != 4 || !wd.ends_with(',') || !WEEKDAYS.contains(&&wd[..3]) {
        return None;
    }
    let m = MONTHS.iter().position(|x| x == mon)? as u32 + 1;
    let y = digits(year, 4)?;
    if y < 1970 {
        return None;
    }
    let hms: Vec<&str> = time.split(':').collect();
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    unix_of(
        i64::from(y),
        m,
        digits(day, 2)?,
        digits(h, 2)?,
        digits(mi, 2)?,
        digits(se, 2)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let cases: &[(u64, &str, &str, &str)] = &[
            (
                0,
                "1970-01-01T00:00:00Z",
                "Thu, 01 Jan 1970 00:00:00 GMT",
                "1970-01-01 00:00 UTC",
            ),
            (
                784_111_777,
                "1994-11-06T08:49:37Z",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                "1994-11-06 08:49 UTC",
            ),
            (
                951_825_600,
                "2000-02-29T12:00:00Z",
                "Tue, 29 Feb 2000 12:00:00 GMT",
                "2000-02-29 12:00 UTC",
            ),
            (
                1_700_000_000,
                "2023-11-14T22:13:20Z",
                "Tue, 14 Nov 2023 22:13:20 GMT",
                "2023-11-14 22:13 UTC",
            ),
            (
                1_792_567_680,
                "2026-10-21T07:28:00Z",
                "Wed, 21 Oct 2026 07:28:00 GMT",
                "2026-10-21 07:28 UTC",
            ),
            (
                4_102_444_799,
                "2099-12-31T23:59:59Z",
                "Thu, 31 Dec 2099 23:59:59 GMT",
                "2099-12-31 23:59 UTC",
            ),
        ];
        for (t, r, h, u) in cases {
            assert_eq!(rfc3339(*t), *r, "rfc3339 {t}");
            assert_eq!(http_date(*t), *h, "http_date {t}");
            assert_eq!(utc_minutes(*t), *u, "utc_minutes {t}");
            assert_eq!(parse_rfc3339(r), Some(*t), "parse_rfc3339 {r}");
            assert_eq!(parse_http_date(h), Some(*t), "parse_http_date {h}");
        }
    }

    #[test]
    fn bad_timestamps_are_refused() {
        for bad in [
            "",
            "1994-11-06 08:49:37Z",
            "1994-13-06T08:49:37Z",
            "1994-11-06T08:49:37",
            "1994-02-30T08:49:37Z",
            "1994-11-06T24:00:00Z",
            "199a-11-06T08:49:37Z",
            "1994-11-06T08:49:37Zextra",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "rfc3339 {bad:?}");
        }
        for bad in [
            "Wed, 21 Oct 2015 07:28:30 UTC",
            "Wednesday, 21-Oct-15 07:28:30 GMT",
            "Wed Oct 21 07:28:30 2015",
            "Wed, 31 Feb 2015 07:28:30 GMT",
            "Wed, 21 Oct 2015 24:00:00 GMT",
            "Xyz, 21 Oct 2015 07:28:30 GMT",
            "Wed, 21 Oct 1969 07:28:30 GMT",
            "Wed, 1 Oct 2015 07:28:30 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "http date {bad:?}");
        }
    }
}
