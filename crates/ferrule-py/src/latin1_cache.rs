//! The encoded bytes of the `str`s an application passes to `start_response`, and of its
//! `(name, value)` header tuples once validated, remembered per thread by object.
//!
//! An application's status and header strings are nearly always the same objects on every call
//! (constants of its code, module-level lists, a framework's cached values). Each used to be
//! copied into a fresh allocation per request, freed later by the I/O thread: five allocations
//! for the hello app. A `str` is immutable, so while we hold a reference to it (which keeps its
//! address from being reused) its encoding cannot change: a hit costs a copy of a short string
//! (kept inline in [`HeadBytes`]) or one reference-count increment of a longer one's bytes.
//!
//! Each table is direct-mapped by address, [`SLOTS`] entries per application thread, strings up
//! to [`STRING_MAX`] bytes; a miss encodes (and validates) and replaces the slot's entry (its
//! object is released then, with the GIL held).

use std::cell::RefCell;
use std::thread::LocalKey;

use ferrule_core::head_bytes::HeadBytes;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// Entries per thread and table: room for a few endpoints' statuses and header strings.
const SLOTS: usize = 64;

/// Longer strings are encoded every time, not kept: the table holds at most
/// `SLOTS × STRING_MAX` bytes per thread.
const STRING_MAX: usize = 1024;

/// What is remembered for one object, with a reference that keeps the object (and so its
/// address) alive while the entry exists.
struct Entry<V> {
    object: Py<PyAny>,
    value: V,
}

type Table<V> = RefCell<Vec<Option<Entry<V>>>>;

thread_local! {
    /// `str` → its latin-1 bytes.
    static STRINGS: Table<HeadBytes> = const { RefCell::new(Vec::new()) };
    /// `(name, value)` tuple → its two strings' bytes, validated as a response header.
    static PAIRS: Table<(HeadBytes, HeadBytes)> = const { RefCell::new(Vec::new()) };
}

/// The slot of the object at `addr` (objects are 16-byte aligned: skip the zero bits).
fn slot_of(addr: usize) -> usize {
    ((addr >> 4) ^ (addr >> 10)) % SLOTS
}

/// What `table` remembers for the object `object`, if anything.
fn lookup<V: Clone>(table: &'static LocalKey<Table<V>>, object: &Bound<'_, PyAny>) -> Option<V> {
    let addr = object.as_ptr() as usize;
    table.with_borrow(|t| {
        t.get(slot_of(addr))
            .and_then(Option::as_ref)
            .filter(|e| e.object.as_ptr() as usize == addr)
            .map(|e| e.value.clone())
    })
}

/// Remembers `value` for `object`, replacing the slot's entry.
fn remember<V>(table: &'static LocalKey<Table<V>>, object: &Bound<'_, PyAny>, value: V) {
    let slot = slot_of(object.as_ptr() as usize);
    let evicted = table.with_borrow_mut(|t| {
        if t.is_empty() {
            t.resize_with(SLOTS, || None);
        }
        t[slot].replace(Entry {
            object: object.clone().unbind(),
            value,
        })
    });
    // Released outside the borrow: dropping an object can run arbitrary code (never for an
    // exact `str` or tuple of them, but a subclass's `__del__` could call back into
    // start_response).
    drop(evicted);
}

/// `encode(s)`, remembered for the object `s`: the same `str` object gives the same bytes
/// without encoding again. Errors are not remembered.
pub(crate) fn encoded(
    s: &Bound<'_, PyString>,
    encode: impl FnOnce(&Bound<'_, PyString>) -> Result<Vec<u8>, String>,
) -> Result<HeadBytes, String> {
    if let Some(bytes) = lookup(&STRINGS, s.as_any()) {
        return Ok(bytes);
    }
    let encoded = encode(s)?;
    if encoded.len() > STRING_MAX {
        return Ok(HeadBytes::from(encoded));
    }
    let bytes = HeadBytes::shareable(encoded);
    remember(&STRINGS, s.as_any(), bytes.clone());
    Ok(bytes)
}

/// `check(pair)`, the bytes of a response header `(name, value)` tuple once validated,
/// remembered for the tuple: a tuple is immutable and holds its two strings, so while the entry
/// holds the tuple, the same object has the same valid header. Applications pass the same tuples
/// on every call (constants of their code, module-level header lists), so a header costs a
/// lookup instead of its type checks, encodings and validation. Errors are not remembered.
pub(crate) fn checked_pair(
    pair: &Bound<'_, PyTuple>,
    check: impl FnOnce(&Bound<'_, PyTuple>) -> PyResult<(HeadBytes, HeadBytes)>,
) -> PyResult<(HeadBytes, HeadBytes)> {
    if let Some(hit) = lookup(&PAIRS, pair.as_any()) {
        return Ok(hit);
    }
    let (name, value) = check(pair)?;
    if name.len() + value.len() <= STRING_MAX {
        remember(&PAIRS, pair.as_any(), (name.clone(), value.clone()));
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_spread_aligned_addresses() {
        let mut used = [false; SLOTS];
        for i in 0..SLOTS {
            used[slot_of(0x7f00_0000_0000 + i * 16)] = true;
        }
        assert!(used.iter().all(|&u| u));
    }
}
