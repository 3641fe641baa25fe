//! When to try again: `Retry-After` parsing, exponential backoff with full
//! jitter, and the `--splay` start delay of cron fleets.
//!
//! Pure: the current time and the random numbers are arguments, so every
//! number here is tested without sleeping. It must not read the clock, sleep
//! or draw random numbers itself (that is the `Host` trait in `sys.rs`).
//!
//! The numbers:
//! - Backoff after the n-th consecutive failure (n = 0 for the first):
//!   `ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2^n)` = 10 s, 20 s, 40 s, ...,
//!   capped at 15 min from the 7th failure on; the delay is drawn uniformly
//!   from `0..=ceiling` ("full jitter"), so a fleet that failed together
//!   spreads out instead of retrying in lock step.
//! - A server's `Retry-After` (delta seconds or an IMF-fixdate HTTP date) is a
//!   floor: the delay is `retry_after + uniform(0..=max(1 s, retry_after/4))`,
//!   capped at `RETRY_AFTER_CAP` (6 h) so a wrong date cannot park a device
//!   for a year. A date in the past means "now" (0 s, plus the jitter).
//! - A device that has checked in before knows its interval and slot (the
//!   server's phase): its backoff never reaches the interval. While the
//!   ceiling is below both the interval and 15 min the delay is the
//!   full-jitter draw; from the failure whose ceiling would reach either on,
//!   the device retries at its own slot, once an interval; with an interval
//!   longer than 15 min, at its slot's place in each 15-minute window (the
//!   phase modulo 15 min). A fleet whose server was down for long therefore
//!   comes back in slot order, as evenly spread as the slots (not at 2x the
//!   mean rate, as uniform draws over the interval would), no device waits
//!   more than one interval after the server returns (with the 15 min cap
//!   alone it could wait 15 min), and a device on a daily interval is not
//!   parked for a day by a short outage (never more than 15 min). `Retry-After` is then a
//!   floor under this delay, so a server answering 503 for an hour does not
//!   gather its fleet into a few seconds either.
//! - `--splay S`: a uniform delay in `0..=S` seconds, millisecond resolution.
//!
//! No jitter is added to the server's slot: the server spreads the fleet
//! (outpost-hub's slots are evenly spread), and any random shift, even of
//! 1 s, makes the fullest second of a 10,000-device, 5-minute fleet ~1.3x the
//! mean instead of ~1.05x (docs/BENCHMARKS.md, fleet spread).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Ceiling of the first retry delay.
pub const BACKOFF_BASE: Duration = Duration::from_secs(10);
/// Largest ceiling of the backoff.
pub const BACKOFF_CAP: Duration = Duration::from_secs(15 * 60);
/// Longest wait a `Retry-After` can impose.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(6 * 3600);

/// Parse a `Retry-After` header value relative to `now`: delta seconds
/// (`120`) or an IMF-fixdate (`Wed, 21 Oct 2026 07:28:00 GMT`). `None` when
/// it is neither. Dates in the past give zero; values above
/// `RETRY_AFTER_CAP` are capped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // More digits than u64 holds is still "a very long time".
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = crate::timefmt::parse_http_date(v)?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Duration::from_secs(at.saturating_sub(now))
    };
    Some(d.min(RETRY_AFTER_CAP))
}

/// The backoff ceiling after `failures` consecutive failures (0 = first).
pub fn backoff_ceiling(failures: u32) -> Duration {
    let factor = 1u64.checked_shl(failures.min(63)).unwrap_or(u64::MAX);
    let secs = BACKOFF_BASE.as_secs().saturating_mul(factor);
    Duration::from_secs(secs).min(BACKOFF_CAP)
}

/// A uniform draw from `0..=max` at millisecond resolution.
pub fn uniform(max: Duration, random: u64) -> Duration {
    let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    match ms.checked_add(1) {
        Some(n) => Duration::from_millis(random % n),
        None => Duration::from_millis(random),
    }
}

/// The delay before the next attempt after `failures` consecutive failures
/// (0 = the first), honouring a server's `Retry-After` when it gave one.
/// `random` is a fresh random number from the caller.
pub fn retry_delay(failures: u32, retry_after: Option<Duration>, random: u64) -> Duration {
    match retry_after {
        Some(ra) => {
            let ra = ra.min(RETRY_AFTER_CAP);
            let spread = (ra / 4).max(Duration::from_secs(1));
            (ra + uniform(spread, random)).min(RETRY_AFTER_CAP)
        }
        None => uniform(backoff_ceiling(failures), random),
    }
}

/// The delay before the next attempt of a device that knows its schedule
/// (it checked in before): `interval` and `to_slot`, the time until its
/// next slot (in `(0, interval]`). The full-jitter backoff while its
/// ceiling is below the interval and [`BACKOFF_CAP`]; then the slot, or for
/// an interval longer than [`BACKOFF_CAP`] the slot's place in each 15-minute
/// window (so the wait is never longer than the interval nor than the cap,
/// and never random once the server's slot is known). A `Retry-After` is a
/// floor under that. With no interval known (zero), [`retry_delay`].
pub fn retry_delay_in(
    failures: u32,
    retry_after: Option<Duration>,
    interval: Duration,
    to_slot: Duration,
    random: u64,
) -> Duration {
    if interval.is_zero() {
        return retry_delay(failures, retry_after, random);
    }
    let ceiling = backoff_ceiling(failures);
    let backoff = if ceiling < interval.min(BACKOFF_CAP) {
        uniform(ceiling, random)
    } else {
        slot_within_cap(to_slot.min(interval))
    };
    match retry_after {
        // Another draw for the Retry-After spread than for the backoff.
        Some(ra) => retry_delay(failures, Some(ra), random.rotate_left(32)).max(backoff),
        None => backoff,
    }
    .min(RETRY_AFTER_CAP)
}

/// The wait until the device's slot, or, when that is more than
/// [`BACKOFF_CAP`] away (an interval longer than 15 min), until the slot's
/// place in the current 15-minute window: the phase modulo the cap. The
/// server's slots are evenly spread over the interval, so their places
/// within 15 minutes are too, and the retries stay as spread as the slots.
fn slot_within_cap(to_slot: Duration) -> Duration {
    let cap = BACKOFF_CAP.as_millis();
    let ms = to_slot.as_millis() % cap;
    if ms == 0 && !to_slot.is_zero() {
        BACKOFF_CAP
    } else {
        // Below the cap (900,000 ms): always fits.
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

/// The `--splay SECONDS` start delay: uniform in `0..=SECONDS`.
pub fn splay_delay(max_secs: u64, random: u64) -> Duration {
    uniform(Duration::from_secs(max_secs), random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn retry_after_forms() {
        // 2026-10-21T07:28:00Z = 1792567680
        let now = at(1_792_567_680);
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("21600", Some(21_600)),
            ("21601", Some(21_600)),
            ("99999999999999999999999", Some(21_600)),
            ("Wed, 21 Oct 2026 07:28:00 GMT", Some(0)),
            ("Wed, 21 Oct 2026 07:30:00 GMT", Some(120)),
            ("Wed, 21 Oct 2026 06:00:00 GMT", Some(0)),
            ("Thu, 22 Oct 2026 07:28:00 GMT", Some(21_600)),
            ("-5", None),
            ("1.5", None),
            ("", None),
            ("soon", None),
            ("Wednesday, 21-Oct-26 07:28:00 GMT", None),
            ("Wed Oct 21 07:28:00 2026", None),
            ("Wed, 21 Oct 2026 07:28:00 UTC", None),
            ("Wed, 32 Oct 2026 07:28:00 GMT", None),
            ("Wed, 21 Foo 2026 07:28:00 GMT", None),
            ("Xyz, 21 Oct 2026 07:28:00 GMT", None),
            ("Wed, 21 Oct 2026 24:28:00 GMT", None),
        ];
        for (input, want) in cases {
            let got = parse_retry_after(input, now).map(|d| d.as_secs());
            assert_eq!(got, *want, "Retry-After {input:?}");
        }
    }

    #[test]
    fn backoff_ceilings_double_then_cap() {
        let want = [10, 20, 40, 80, 160, 320, 640, 900, 900];
        for (n, w) in want.iter().enumerate() {
            assert_eq!(backoff_ceiling(n as u32).as_secs(), *w, "failure {n}");
        }
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP, "huge failure count");
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        // (failures, retry_after, random, expected ms)
        let cases: &[(u32, Option<u64>, u64, u64)] = &[
            (0, None, 0, 0),
            (0, None, 10_000, 10_000),
            (0, None, 10_001, 0),
            (0, None, 2_500, 2_500),
            (3, None, 79_999, 79_999),
            (20, None, 900_000, 900_000),
            (20, None, u64::MAX, u64::MAX % 900_001),
            // Retry-After is a floor, spread over the next quarter (>= 1 s).
            (0, Some(120), 0, 120_000),
            (0, Some(120), 30_000, 150_000),
            (0, Some(120), 30_001, 120_000),
            (0, Some(0), 1_000, 1_000),
            (0, Some(2), 1_000, 3_000),
            (9, Some(999_999), 12_345, 21_600_000),
        ];
        for (n, ra, r, want) in cases {
            let got = retry_delay(*n, ra.map(Duration::from_secs), *r);
            assert_eq!(
                got.as_millis() as u64,
                *want,
                "failures {n}, retry-after {ra:?}, random {r}"
            );
        }
    }

    #[test]
    fn known_interval_bounds_the_backoff_then_keeps_the_slot() {
        // (name, failures, retry_after s, interval s, to_slot ms, random, want ms)
        type Case = (&'static str, u32, Option<u64>, u64, u64, u64, u64);
        let cases: &[Case] = &[
            (
                "first failure: full jitter",
                0,
                None,
                300,
                5_000,
                7_777,
                7_777,
            ),
            (
                "ceiling 160 s < 300 s",
                4,
                None,
                300,
                5_000,
                159_000,
                159_000,
            ),
            (
                "ceiling 320 s reaches 300 s: slot",
                5,
                None,
                300,
                5_000,
                159_000,
                5_000,
            ),
            ("many failures: slot", 40, None, 300, 299_999, 1, 299_999),
            (
                "slot beyond the interval is cut",
                9,
                None,
                300,
                400_000,
                1,
                300_000,
            ),
            (
                "60 s interval: slot from 80 s on",
                3,
                None,
                60,
                12_345,
                1,
                12_345,
            ),
            (
                "60 s interval: 40 s draw",
                2,
                None,
                60,
                12_345,
                39_000,
                39_000,
            ),
            (
                "60 s interval: 20 s draw",
                1,
                None,
                60,
                12_345,
                19_000,
                19_000,
            ),
            ("1 s interval: slot at once", 0, None, 1, 700, 3, 700),
            (
                "no interval known: 15 min cap",
                7,
                None,
                0,
                5_000,
                900_000,
                900_000,
            ),
            (
                "1 h interval: 640 s draw",
                6,
                None,
                3_600,
                2_000_000,
                639_000,
                639_000,
            ),
            (
                "1 h interval: the slot's place in 15 min",
                7,
                None,
                3_600,
                2_000_000,
                777_000,
                200_000,
            ),
            (
                "1 day interval, many failures: never past 15 min",
                40,
                None,
                86_400,
                80_000_000,
                u64::MAX,
                800_000,
            ),
            (
                "1 h interval, slot 30 min away: 15 min, not 0",
                7,
                None,
                3_600,
                1_800_000,
                1,
                900_000,
            ),
            (
                "15 min interval: the slot",
                7,
                None,
                900,
                600_000,
                1,
                600_000,
            ),
            (
                "Retry-After floor over the slot",
                9,
                Some(120),
                300,
                5_000,
                0,
                120_000,
            ),
            (
                "slot later than Retry-After",
                9,
                Some(5),
                300,
                200_000,
                0,
                200_000,
            ),
            (
                "Retry-After over a small draw",
                0,
                Some(5),
                300,
                5_000,
                2_000,
                6_241,
            ),
            (
                "Retry-After capped at 6 h",
                9,
                Some(999_999),
                300,
                1,
                0,
                21_600_000,
            ),
        ];
        for (name, n, ra, iv, slot, r, want) in cases {
            let got = retry_delay_in(
                *n,
                ra.map(Duration::from_secs),
                Duration::from_secs(*iv),
                Duration::from_millis(*slot),
                *r,
            );
            assert_eq!(got.as_millis() as u64, *want, "{name}");
        }
    }

    /// The bound the fleet relies on: whatever the failure count, the
    /// random number and the slot, a device that knows its interval retries
    /// within one interval and within the 15 min cap (without Retry-After).
    #[test]
    fn known_interval_never_waits_longer_than_it() {
        for iv in [1u64, 10, 60, 300, 900, 3_600, 86_400] {
            let interval = Duration::from_secs(iv);
            for n in 0..70 {
                for r in [0u64, 1, 12_345, 899_999, u64::MAX / 3, u64::MAX] {
                    let to_slot = Duration::from_millis(r % (iv * 1000) + 1);
                    let d = retry_delay_in(n, None, interval, to_slot, r);
                    assert!(d <= interval, "interval {iv} s, failure {n}: {d:?}");
                    assert!(d <= BACKOFF_CAP, "interval {iv} s, failure {n}: {d:?}");
                }
            }
        }
    }

    #[test]
    fn splay_is_uniform_in_range() {
        let cases: &[(u64, u64, u64)] = &[
            (0, 12345, 0),
            (60, 0, 0),
            (60, 60_000, 60_000),
            (60, 60_001, 0),
            (300, 123_456, 123_456),
        ];
        for (max, r, want) in cases {
            assert_eq!(
                splay_delay(*max, *r).as_millis() as u64,
                *want,
                "splay {max}s random {r}"
            );
        }
    }
}
