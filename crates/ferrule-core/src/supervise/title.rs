//! Process titles: what `ps` shows for the master and the workers, e.g.
//! `ferrule: master [myapp:app]` and `ferrule: worker 2 [myapp:app]`.
//!
//! Linux has no call for it: `ps -o args` and `/proc/PID/cmdline` read the process's own
//! argument area, the memory between `arg_start` and `arg_end` (fields 48 and 49 of
//! `/proc/self/stat`, `proc(5)`). [`set`] overwrites that area in place, never past its
//! original length (what follows it is the environment), and fills the rest with NUL bytes; the
//! title is cut to fit. `prctl(PR_SET_NAME)` sets the short name (`comm`, 15 bytes) that `top`
//! and `ps -o comm` show.
//!
//! The original arguments are gone afterwards for anyone reading this memory; the Python side
//! keeps its own copies (`sys.argv`, `sys.orig_argv`), which USR2 uses to start a new master.

/// Longest `comm` name the kernel keeps (16 bytes with the NUL).
pub const COMM_MAX: usize = 15;

/// `arg_start` and `arg_end` from the text of `/proc/self/stat`.
fn arg_area(stat: &str) -> Option<(usize, usize)> {
    // Field 2, the command name, is in parentheses and may contain spaces or parentheses: the
    // fields after it start after the last ')'. That rest begins with field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // Field 48 is the 46th after field 2.
    let start: usize = fields.nth(45)?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
}

/// Sets the process title (see the module docs) and the `comm` name. Returns false when the
/// argument area could not be found (the `comm` name is set anyway).
pub fn set(title: &str, comm: &str) -> bool {
    set_comm(comm);
    let Some((start, end)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(arg_area)
    else {
        return false;
    };
    let len = end - start;
    let bytes = title.as_bytes();
    // Keep at least one NUL at the end, so readers see a terminated string.
    let n = bytes.len().min(len - 1);
    // SAFETY: [arg_start, arg_end) is this process's argument area, as the kernel reports it:
    // mapped, writable memory (the initial stack) of exactly `len` bytes. Nothing in this
    // process holds a Rust reference to it (the Python side copied the arguments at start).
    unsafe {
        let area = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), area, n);
        std::ptr::write_bytes(area.add(n), 0, len - n);
    }
    true
}

/// `prctl(PR_SET_NAME)`: the calling thread's name; for the main thread, the process's.
fn set_comm(comm: &str) {
    let mut name = [0u8; COMM_MAX + 1];
    let n = comm.len().min(COMM_MAX);
    name[..n].copy_from_slice(&comm.as_bytes()[..n]);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes from `name`.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_argument_area() {
        let mut fields: Vec<String> = (3..=52).map(|i| i.to_string()).collect();
        fields[48 - 3] = "1000".into();
        fields[49 - 3] = "1050".into();
        let stat = format!("42 (we (ird) name) {}", fields.join(" "));
        assert_eq!(arg_area(&stat), Some((1000, 1050)));
        assert_eq!(arg_area("42 (x) R 1"), None);
    }

    #[test]
    fn own_stat_has_an_argument_area() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let (start, end) = arg_area(&stat).unwrap();
        assert!(end > start);
    }
}
