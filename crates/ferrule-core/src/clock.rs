//! Cheap clock reads for deadlines and the `Date` header.
//!
//! `Instant::now()` reads `CLOCK_MONOTONIC` through the vDSO: about 22 ns on the benchmark VM
//! (a `rdtsc` and its conversion), and a keep-alive request used to make eight such reads.
//! Most of them only set deadlines counted in seconds (header, keep-alive, queue and request
//! timeouts) that a sweep checks every 100 ms. The coarse clocks (`CLOCK_MONOTONIC_COARSE`,
//! `CLOCK_REALTIME_COARSE`) are the same clocks as of the kernel's last tick (1-10 ms ago,
//! depending on `CONFIG_HZ`) and cost about 3 ns. Durations that are reported (metrics, the
//! access log) keep `Instant::now()`.
//!
//! [`coarse_now`] returns an `Instant`, so its deadlines mix with precise ones: it places the
//! coarse reading on `Instant`'s timeline through one precise pair of readings taken once. It
//! is at most one tick behind `Instant::now()`, and never goes backwards.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One reading of both clocks, back to back: where `CLOCK_MONOTONIC`'s timeline and
/// `Instant`'s meet.
struct Origin {
    instant: Instant,
    monotonic: Duration,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// `clock`'s current value (a `libc::CLOCK_*` id) since its epoch.
fn read(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock ids used here exist on every
    // Linux since 2.6.32, so the call cannot fail (and `ts` stays zero if it did).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Now, as of the kernel's last tick: at most one tick (1-10 ms) behind `Instant::now()`.
/// For deadlines only, never for durations that are reported.
pub fn coarse_now() -> Instant {
    let origin = ORIGIN.get_or_init(|| Origin {
        instant: Instant::now(),
        monotonic: read(libc::CLOCK_MONOTONIC),
    });
    // The coarse clock may still be behind the origin's precise reading: saturate to it.
    origin.instant + read(libc::CLOCK_MONOTONIC_COARSE).saturating_sub(origin.monotonic)
}

/// Seconds since the Unix epoch, as of the kernel's last tick (for the `Date` header).
pub fn coarse_unix_secs() -> u64 {
    read(libc::CLOCK_REALTIME_COARSE).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel tick is at most 10 ms (`CONFIG_HZ` >= 100); allow scheduling noise.
    const TICK_SLACK: Duration = Duration::from_millis(50);

    #[test]
    fn coarse_now_trails_instant_now_by_at_most_a_tick() {
        for _ in 0..1_000 {
            let before = Instant::now();
            let coarse = coarse_now();
            let after = Instant::now();
            assert!(coarse <= after, "coarse {coarse:?} ahead of {after:?}");
            assert!(
                before.saturating_duration_since(coarse) <= TICK_SLACK,
                "coarse {coarse:?} too far behind {before:?}"
            );
        }
    }

    #[test]
    fn coarse_now_never_goes_backwards_and_advances() {
        let start = coarse_now();
        let mut last = start;
        while last.duration_since(start) < Duration::from_millis(30) {
            let now = coarse_now();
            assert!(now >= last);
            last = now;
            std::thread::yield_now();
        }
    }

    #[test]
    fn coarse_unix_secs_is_the_wall_clock_second() {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let coarse = coarse_unix_secs();
        assert!(coarse <= wall && wall - coarse <= 1, "{coarse} vs {wall}");
    }
}
