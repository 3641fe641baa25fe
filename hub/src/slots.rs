//! Server-assigned phases: where in its check-in interval each device
//! checks in, so a fleet's check-ins are spread evenly over the interval.
//!
//! Every device gets a registration ordinal `n` (0, 1, 2, ...; a sequence
//! on PostgreSQL, so several hubs never hand out the same one; a counter in
//! the write transaction on SQLite) and keeps it for life. Its phase is the
//! base-2 van der Corput point of `n`, the bits of `n` reversed behind the
//! binary point, times the interval. The first `2^k` ordinals land exactly
//! on the `2^k` even marks of the interval, and every prefix, of any
//! length, is spread within a factor of two of perfectly even (largest gap
//! <= 2/n of the interval): a burst of registrations, of any size, is
//! spread as it arrives, and the fleet stays spread as it grows. A hash of
//! the host ID (the phase before) is only random: 10,000 devices over 300
//! one-second bins give ~1.5x the mean in the fullest second.
//!
//! The slot is a fraction of the interval, not milliseconds: a changed
//! interval keeps every device's place in it.
//!
//! Must not depend on anything but the ordinal and the interval (the load
//! generator's virtual clock calls this same function).

/// The phase in `[0, interval_ms)` of the device with registration ordinal
/// `ordinal`.
pub fn phase_ms(ordinal: u64, interval_ms: u64) -> u64 {
    // The low 32 bits reversed: a fraction of 2^32 in [0, 1).
    let frac = u64::from((ordinal as u32).reverse_bits());
    ((u128::from(frac) * u128::from(interval_ms)) >> 32) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ordinals_halve_the_gaps() {
        // (ordinal, interval, phase)
        let cases: &[(u64, u64, u64)] = &[
            (0, 300_000, 0),
            (1, 300_000, 150_000),
            (2, 300_000, 75_000),
            (3, 300_000, 225_000),
            (4, 300_000, 37_500),
            (5, 300_000, 187_500),
            (6, 300_000, 112_500),
            (7, 300_000, 262_500),
            (1, 1_000, 500),
            (1, 0, 0),
            (1, 1, 0),
            // Beyond 2^32 ordinals the sequence starts again.
            (1 << 32, 300_000, 0),
            ((1 << 32) + 1, 300_000, 150_000),
            (u64::from(u32::MAX), 300_000, 299_999),
            (1, 7 * 86_400_000, 302_400_000),
        ];
        for (n, iv, want) in cases {
            assert_eq!(phase_ms(*n, *iv), *want, "ordinal {n}, interval {iv}");
        }
    }

    /// Every prefix of the sequence, of any length, is evenly spread: the
    /// largest gap between neighbouring phases (around the circle) is at
    /// most twice the even gap, and no two of the first 2^20 coincide.
    #[test]
    fn every_prefix_is_evenly_spread() {
        let iv: u64 = 300_000;
        for n in [1u64, 2, 3, 5, 7, 10, 33, 100, 999, 1_000, 4_097, 10_000] {
            let mut p: Vec<u64> = (0..n).map(|k| phase_ms(k, iv)).collect();
            p.sort_unstable();
            let mut gap = p[0] + iv - p[p.len() - 1];
            for w in p.windows(2) {
                gap = gap.max(w[1] - w[0]);
            }
            assert!(
                gap <= 2 * iv / n + 1,
                "{n} devices: largest gap {gap} ms, even gap {} ms",
                iv / n
            );
        }
        let mut seen: Vec<u64> = (0..1u64 << 20).map(|k| phase_ms(k, 1 << 40)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 1 << 20, "distinct phases");
    }

    #[test]
    fn within_the_interval() {
        for iv in [1u64, 2, 999, 300_000, 604_800_000] {
            for n in [0u64, 1, 12_345, u64::from(u32::MAX), u64::MAX] {
                assert!(phase_ms(n, iv) < iv, "ordinal {n} in {iv}");
            }
        }
    }
}
