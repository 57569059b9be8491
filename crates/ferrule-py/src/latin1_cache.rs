//! The encoded bytes of the `str`s an application passes to `start_response`, remembered per
//! thread by object.
//!
//! An application's status and header strings are nearly always the same objects on every call
//! (constants of its code, module-level lists, a framework's cached values). Each used to be
//! copied into a fresh allocation per request, freed later by the I/O thread: five allocations
//! for the hello app. A `str` is immutable, so while we hold a reference to it (which keeps its
//! address from being reused) its encoding cannot change: a hit costs one reference-count
//! increment of the shared bytes.
//!
//! The table is direct-mapped by address, [`SLOTS`] entries per application thread, strings up
//! to [`STRING_MAX`] bytes; a miss encodes and replaces the slot's entry (its `str` is released
//! then, with the GIL held).

use std::cell::RefCell;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyString;

/// Entries per thread: room for a few endpoints' statuses and header strings.
const SLOTS: usize = 64;

/// Longer strings are encoded every time, not kept: the table holds at most
/// `SLOTS × STRING_MAX` bytes per thread.
const STRING_MAX: usize = 1024;

struct Entry {
    text: Py<PyString>,
    bytes: Bytes,
}

thread_local! {
    static TABLE: RefCell<Vec<Option<Entry>>> = const { RefCell::new(Vec::new()) };
}

/// The slot of the object at `addr` (objects are 16-byte aligned: skip the zero bits).
fn slot_of(addr: usize) -> usize {
    ((addr >> 4) ^ (addr >> 10)) % SLOTS
}

/// `encode(s)`, remembered for the object `s`: the same `str` object gives the same bytes
/// without encoding again. Errors are not remembered.
pub(crate) fn encoded(
    s: &Bound<'_, PyString>,
    encode: impl FnOnce(&Bound<'_, PyString>) -> Result<Vec<u8>, String>,
) -> Result<Bytes, String> {
    let addr = s.as_ptr() as usize;
    let slot = slot_of(addr);
    let hit = TABLE.with_borrow(|table| {
        table
            .get(slot)
            .and_then(Option::as_ref)
            .filter(|e| e.text.as_ptr() as usize == addr)
            .map(|e| e.bytes.clone())
    });
    if let Some(bytes) = hit {
        return Ok(bytes);
    }
    let encoded = encode(s)?;
    if encoded.len() > STRING_MAX {
        return Ok(Bytes::from(encoded));
    }
    // Shared from the start, so the clones handed out are reference counts.
    let bytes = Bytes::from_owner(encoded);
    let evicted = TABLE.with_borrow_mut(|table| {
        if table.is_empty() {
            table.resize_with(SLOTS, || None);
        }
        table[slot].replace(Entry {
            text: s.clone().unbind(),
            bytes: bytes.clone(),
        })
    });
    // Released outside the borrow: dropping a `str` can run arbitrary code (never for an exact
    // `str`, but a subclass's `__del__` could call back into start_response).
    drop(evicted);
    Ok(bytes)
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
