//! The extension's global allocator: mimalloc (v3, `no_thp`), entered through its plain
//! `mi_malloc` whenever the layout asks for an alignment that every mimalloc block of that
//! size already has.
//!
//! The `mimalloc` crate's allocator sends every allocation to `mi_malloc_aligned`, whose
//! alignment checks and fallbacks cost about 35 instructions more than `mi_malloc`'s fast path;
//! a hello request makes about 25 allocations (`benchmarks/callgrind.py`; docs/architecture.md,
//! "Where the time goes (hello)").
//!
//! Why the plain path is correct, from mimalloc's layout of blocks: a page's first block starts
//! 16-byte aligned (`MI_PAGE_MIN_START_BLOCK_ALIGN`), and a block size is a whole number of
//! words, each size class up to 8 words being exact and every larger class a multiple of 2
//! words. So every block is 8-byte aligned, and a block for a size that is a multiple of 16
//! bytes is 16-byte aligned. Any other layout (alignment above 16, or 16 with a size that is
//! not a multiple of 16) goes through `mi_malloc_aligned` as before. The unit tests below
//! check the rule on every size class up to 64 KiB.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has.
const WORD_ALIGN: usize = 8;
/// The alignment of every mimalloc block whose size is a multiple of it.
const SIZE_MULTIPLE_ALIGN: usize = 16;

/// mimalloc as Rust's global allocator (see the module docs).
pub(crate) struct Mimalloc;

/// True when a block of `size` bytes from `mi_malloc` is aligned to `align`.
#[inline]
fn plain_is_aligned(size: usize, align: usize) -> bool {
    align <= WORD_ALIGN
        || (align == SIZE_MULTIPLE_ALIGN && size.is_multiple_of(SIZE_MULTIPLE_ALIGN))
}

// SAFETY: every method returns memory from mimalloc that is valid for the layout (its size,
// and its alignment: `plain_is_aligned`, else mimalloc's aligned entry points), or null; and
// `dealloc`/`realloc` only ever see pointers that came from these methods.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: plain C allocation calls; a null result is passed on as allocation failure.
        unsafe {
            if plain_is_aligned(size, align) {
                mi::mi_malloc(size).cast()
            } else {
                mi::mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as in `alloc`.
        unsafe {
            if plain_is_aligned(size, align) {
                mi::mi_zalloc(size).cast()
            } else {
                mi::mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract); mimalloc frees any
        // of its blocks, aligned or not.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: `ptr` came from this allocator; the new block follows the rule of `alloc`.
        unsafe {
            if plain_is_aligned(new_size, align) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to 64 KiB (in steps that cover each size class), several blocks each, so
    /// blocks at odd positions in their page are checked too.
    #[test]
    fn plain_blocks_have_the_promised_alignment() {
        let a = Mimalloc;
        for (align, step) in [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16)] {
            let mut size = step;
            while size <= 64 * 1024 {
                let layout = Layout::from_size_align(size, align).unwrap();
                assert!(plain_is_aligned(size, align));
                let blocks: Vec<*mut u8> = (0..5)
                    .map(|_| unsafe { a.alloc(layout) }) // SAFETY: non-zero size
                    .collect();
                for &p in &blocks {
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    // SAFETY: from `a.alloc(layout)` above.
                    unsafe { a.dealloc(p, layout) };
                }
                size += if size < 1024 { step } else { step.max(256) };
            }
        }
    }

    #[test]
    fn other_layouts_take_the_aligned_path_and_are_aligned() {
        let a = Mimalloc;
        for (size, align) in [(24, 16), (40, 16), (384, 128), (100, 64), (4096, 4096)] {
            assert!(!plain_is_aligned(size, align));
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed below.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            // SAFETY: grows the block from `a.alloc(layout)`; the result replaces it.
            let q = unsafe { a.realloc(p, layout, size * 3) };
            assert_eq!(q as usize % align, 0);
            // SAFETY: from `a.realloc` above, with the layout's alignment.
            unsafe { a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap()) };
        }
    }

    #[test]
    fn zeroed_blocks_are_zero() {
        let a = Mimalloc;
        for size in [8, 16, 48, 1024, 70_000] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            // SAFETY: non-zero size; freed below.
            let p = unsafe { a.alloc_zeroed(layout) };
            // SAFETY: `size` bytes were just allocated at `p`.
            assert!(unsafe { std::slice::from_raw_parts(p, size) }
                .iter()
                .all(|&b| b == 0));
            // SAFETY: from `a.alloc_zeroed(layout)`.
            unsafe { a.dealloc(p, layout) };
        }
    }
}
