//! Recycling, the worker's side: count finished requests, watch the resident memory, and ask
//! the master once for a replacement (`RETIRING`) when a limit is reached.
//!
//! The worker does not stop by itself: it keeps serving while the master forks its replacement,
//! and leaves gracefully (in-flight requests finish) when the master, once the replacement is
//! ready, sends TERM. So a recycled worker never leaves the listeners without a server.
//!
//! - `max_requests` (gunicorn's name) plus a random `0..=max_requests_jitter`, drawn once per
//!   worker, so workers started together do not all recycle together.
//! - `max_worker_memory` (MiB): the resident set size, read from `/proc/self/statm` after each
//!   request (one `pread` on a descriptor kept open: a few microseconds).
//!
//! The master applies `max_worker_lifetime` and checks every worker's RSS from outside as well
//! (see `master`), which catches memory that grows while no request finishes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::pipe::{MasterLink, Message};
use crate::config::ServerConfig;

/// Bytes in a MiB (`max_worker_memory` is given in MiB).
pub const MIB: u64 = 1024 * 1024;

/// A random number in `0..=max` from the kernel (`getrandom(2)`); 0 if that fails (no jitter
/// is still a correct limit).
pub fn random_up_to(max: u64) -> u64 {
    if max == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the valid local buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return 0;
    }
    u64::from_ne_bytes(bytes) % (max.saturating_add(1)).max(1)
}

/// Resident set size in bytes from a `statm` file (second field, in pages).
pub fn rss_from_statm(text: &str) -> Option<u64> {
    let pages: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(page_size()))
}

/// Resident set size of process `pid`, in bytes (`None`: gone or unreadable).
pub fn rss_of(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    rss_from_statm(&text)
}

fn page_size() -> u64 {
    // SAFETY: sysconf with a valid name has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// One worker's recycling state; shared by its application threads.
#[derive(Debug)]
pub struct Recycler {
    /// Requests after which the worker retires (jitter applied); 0 = no limit.
    max_requests: u64,
    /// RSS in bytes past which the worker retires; 0 = no limit.
    max_rss: u64,
    served: AtomicU64,
    retiring: AtomicBool,
    /// `/proc/self/statm`, kept open (re-read from offset 0 each time).
    statm: Option<File>,
    link: Arc<MasterLink>,
}

impl Recycler {
    /// The recycler for a forked worker.
    pub fn new(config: &ServerConfig, link: Arc<MasterLink>) -> Recycler {
        let max_requests = match config.max_requests {
            0 => 0,
            n => n.saturating_add(random_up_to(config.max_requests_jitter)),
        };
        let max_rss = config.max_worker_memory.saturating_mul(MIB);
        let statm = if max_rss > 0 {
            File::open("/proc/self/statm")
                .map_err(|e| log::warn!("max_worker_memory: cannot read /proc/self/statm: {e}"))
                .ok()
        } else {
            None
        };
        Recycler {
            max_requests,
            max_rss,
            served: AtomicU64::new(0),
            retiring: AtomicBool::new(false),
            statm,
            link,
        }
    }

    /// The request limit this worker drew (jitter applied); 0 = none.
    pub fn max_requests(&self) -> u64 {
        self.max_requests
    }

    /// Called by an application thread after each request.
    pub fn request_done(&self) {
        let served = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        if self.retiring.load(Ordering::Relaxed) {
            return;
        }
        if self.max_requests != 0 && served >= self.max_requests {
            self.retire(&format!("served {served} requests (max_requests)"));
            return;
        }
        if let Some(rss) = self.rss() {
            if rss > self.max_rss {
                self.retire(&format!(
                    "uses {} MiB of memory (max_worker_memory {} MiB)",
                    rss / MIB,
                    self.max_rss / MIB
                ));
            }
        }
    }

    /// Asks the master for a replacement, once; false if it was asked already.
    pub fn retire(&self, why: &str) -> bool {
        if self.retiring.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Err(e) = self.link.send(&Message::Retiring(why.to_owned())) {
            log::error!("cannot ask the master for a replacement ({why}): {e}");
        }
        true
    }

    /// True once this worker asked to be replaced.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Relaxed)
    }

    fn rss(&self) -> Option<u64> {
        let statm = self.statm.as_ref()?;
        let mut buf = [0u8; 128];
        let n = statm.read_at(&mut buf, 0).ok()?;
        rss_from_statm(std::str::from_utf8(&buf[..n]).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_parsing() {
        assert_eq!(rss_from_statm("100 3 2 1 0 5 0\n"), Some(3 * page_size()));
        assert_eq!(rss_from_statm("100"), None);
        assert_eq!(rss_from_statm(""), None);
    }

    #[test]
    fn own_rss_is_read_fresh_each_time() {
        let f = File::open("/proc/self/statm").unwrap();
        let read = || {
            let mut buf = [0u8; 128];
            let n = f.read_at(&mut buf, 0).unwrap();
            rss_from_statm(std::str::from_utf8(&buf[..n]).unwrap()).unwrap()
        };
        let before = read();
        let big = std::hint::black_box(vec![1u8; 64 * 1024 * 1024]);
        let after = read();
        assert!(after >= before + 32 * MIB, "{before} -> {after}");
        drop(big);
        assert!(rss_of(std::process::id() as libc::pid_t).is_some());
    }

    #[test]
    fn jitter_stays_in_range() {
        assert_eq!(random_up_to(0), 0);
        for _ in 0..100 {
            assert!(random_up_to(3) <= 3);
        }
    }

    #[test]
    fn retires_once_at_the_limit() {
        let (r, w) = super::super::pipe::pipe().unwrap();
        let config = ServerConfig {
            max_requests: 3,
            ..ServerConfig::default()
        };
        let recycler = Recycler::new(&config, Arc::new(MasterLink::new(w)));
        for _ in 0..5 {
            recycler.request_done();
        }
        assert!(recycler.is_retiring());
        drop(recycler);
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut File::from(r), &mut buf).unwrap();
        let first = super::super::pipe::decode(&mut buf).unwrap();
        assert!(matches!(first, Some(Message::Retiring(t)) if t.contains("3 requests")));
        assert!(buf.is_empty(), "RETIRING is sent once");
    }
}
