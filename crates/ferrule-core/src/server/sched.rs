//! The I/O thread's scheduling policy: `SCHED_BATCH`, so that it does not preempt the
//! application threads when it wakes.
//!
//! sched(7): "SCHED_BATCH ... this policy will cause the scheduler to always assume that the
//! thread is CPU-intensive. Consequently, the scheduler will apply a small scheduling penalty
//! with respect to wakeup behavior, so that this thread is mildly disfavored in scheduling
//! decisions." Its share of the CPU is that of any other thread (same nice value); what it loses
//! is wake-up preemption.
//!
//! Why: when the application keeps a core busy, every finished response wakes the parked I/O
//! thread, and with wake-up preemption the kernel switches to it at once; it writes that one
//! response, reads one request and parks again, two context switches per request with the
//! caches full of the application. Without it, the I/O thread runs when the application thread
//! blocks (waiting for its next job) or its time slice ends, and writes every response that is
//! ready by then in one go. On an idle core it runs at once, as before; on a busy one it waits
//! at most one time slice of the kernel's scheduler. Measured on the Flask benchmark (one core
//! shared by all the server's threads, `wrk -c64`): 13.1-14.7k → 16.9-17.5k requests per second
//! and p99 latency 23-25 → 14-16 ms; hello unchanged (docs/architecture.md).

/// Switches the calling thread from the default policy to `SCHED_BATCH`. A thread that
/// started under another policy (the operator's `chrt`, or systemd's `CPUSchedulingPolicy=`:
/// real-time, idle, batch) keeps it. A failure (a seccomp policy that forbids
/// `sched_setscheduler`) is logged at debug level and changes nothing else.
pub(crate) fn batch_current_thread() {
    // SAFETY: no precondition; pid 0 is the calling thread.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread (Linux applies the
    // policy per thread).
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        log::debug!(
            "cannot set SCHED_BATCH on the I/O thread: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_calling_thread_becomes_batch() {
        std::thread::spawn(|| {
            super::batch_current_thread();
            // SAFETY: no precondition; pid 0 is the calling thread.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, libc::SCHED_BATCH);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_policy_the_operator_chose_is_kept() {
        std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a valid sched_param for SCHED_IDLE (no privilege needed); calling thread.
            assert_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) },
                0
            );
            super::batch_current_thread();
            // SAFETY: no precondition; pid 0 is the calling thread.
            assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
    }
}
