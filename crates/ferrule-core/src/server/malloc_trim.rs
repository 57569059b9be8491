//! glibc `malloc`'s trimming, set for a server whose requests allocate and free
//! request-sized buffers (the Python `bytes` of a request body, the app's response).
//!
//! Python allocates every object above 512 bytes with `malloc`, and each application thread
//! gets a glibc arena of its own. glibc gives the top of an arena back to the kernel
//! (`madvise(MADV_DONTNEED)`) whenever more than `M_TRIM_THRESHOLD` is free there: 128 KiB by
//! default, raised only after a chunk above the mmap threshold (128 KiB) has been freed. A
//! 64 KiB upload read by `wsgi.input.read()` never crosses it, so under load every request
//! freed its body, the arena shrank, and the next body took 16 page faults to grow it back:
//! measured on the `echo` benchmark (64 KiB POST), 64 µs of CPU per request against 36 µs with
//! the threshold raised (benchmarks/README.md, session 4).
//!
//! [`tune`] sets the thresholds glibc's own adaptive rule reaches after a 1 MiB chunk has been
//! freed ([`MMAP_THRESHOLD`], [`TRIM_THRESHOLD`] = twice that), from the start: buffers up to
//! 1 MiB are reused from the arena, and an arena keeps at most 2 MiB of free memory on top.
//! An operator who sets glibc's own knobs (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`,
//! `GLIBC_TUNABLES=glibc.malloc.*`) keeps them: [`tune`] then changes nothing.

/// Allocations at least this large get their own `mmap` (glibc's default starts at 128 KiB
/// and adapts up to 32 MiB; fixed here at the size its rule reaches for a 1 MiB buffer).
pub const MMAP_THRESHOLD: usize = 1024 * 1024;

/// Free memory at the top of an arena beyond which glibc returns it to the kernel (glibc's rule:
/// twice the mmap threshold).
pub const TRIM_THRESHOLD: usize = 2 * MMAP_THRESHOLD;

/// The environment variables through which an operator tunes glibc's malloc.
const OPERATOR_KNOBS: [&str; 4] = [
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "GLIBC_TUNABLES",
];

/// Whether the environment already tunes glibc's malloc (then [`tune`] leaves it alone).
fn operator_tuned(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    OPERATOR_KNOBS.iter().any(|name| match var(name) {
        Some(value) if *name == "GLIBC_TUNABLES" => value.to_string_lossy().contains("malloc"),
        Some(_) => true,
        None => false,
    })
}

/// Sets [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] unless the operator tuned malloc already.
/// Returns whether it changed them. Does nothing but on glibc.
pub fn tune() -> bool {
    if operator_tuned(|name| std::env::var_os(name)) {
        return false;
    }
    set_thresholds()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_thresholds() -> bool {
    // `mallopt` returns 1 on success; the values are in range for a C int.
    let as_int = |v: usize| libc::c_int::try_from(v).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets two of glibc's malloc parameters; any thread may call it.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, as_int(MMAP_THRESHOLD)) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, as_int(TRIM_THRESHOLD)) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn an_operator_setting_wins() {
        let none = |_: &str| None;
        assert!(!operator_tuned(none));
        let trim = |n: &str| (n == "MALLOC_TRIM_THRESHOLD_").then(|| OsString::from("0"));
        assert!(operator_tuned(trim));
        let tunables = |n: &str| {
            (n == "GLIBC_TUNABLES").then(|| OsString::from("glibc.malloc.trim_threshold=0"))
        };
        assert!(operator_tuned(tunables));
        // Tunables of other glibc parts are not a malloc setting.
        let other = |n: &str| (n == "GLIBC_TUNABLES").then(|| OsString::from("glibc.rtld.nns=2"));
        assert!(!operator_tuned(other));
    }

    #[test]
    fn thresholds_follow_glibcs_own_ratio() {
        assert_eq!(TRIM_THRESHOLD, 2 * MMAP_THRESHOLD);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(set_thresholds(), "mallopt refused the thresholds");
    }
}
