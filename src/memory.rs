//! The binary's allocator on Linux: large blocks in mappings of their own,
//! advised as huge-page memory; everything else the system allocator's.
//!
//! Why: a run's large arrays (per-person states and columns, and with
//! several as-of dates a state per person and date) are fresh memory that
//! Linux faults in 4 KiB at a time, zeroing each page as it is first
//! touched. At 5M persons the default model took about a million page
//! faults; 12 dates of `evaluate` at 1M about 770,000, with a sixth of the
//! CPU in the kernel. A block of [`LARGE`] bytes or more gets a mapping of
//! its own, whole huge pages long, advised as huge-page memory
//! (`madvise(MADV_HUGEPAGE)`), so that where transparent huge pages are
//! `madvise` or `always` (`/sys/kernel/mm/transparent_hugepage/enabled`)
//! each fault brings in 2 MiB (`docs/performance.md`).
//!
//! The mapping is the block's own, advised whole, because advising part of
//! a mapping splits it, and glibc grows its large blocks in place with
//! `mremap`, which Linux refuses across a split: every growth became a copy
//! with both copies resident. Here a large block grows and shrinks by
//! `mremap` of its whole mapping. Whether a block is large is decided by its
//! layout alone, so freeing needs no header. Where transparent huge pages
//! are `never` the mappings are plain ones, as glibc's own for blocks over
//! its mmap threshold.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;

use rustix::mm::{Advice, MapFlags, MremapFlags, ProtFlags};

/// A huge page on x86-64 and on arm64 with 4 KiB pages. (With larger base
/// pages arm64's huge pages are larger: a block's mapping is then advised
/// but no huge page fits.)
const HUGE_PAGE: usize = 2 << 20;

/// Blocks at least this large get a mapping of their own.
const LARGE: usize = HUGE_PAGE;

/// A page: the alignment a mapping always has.
const PAGE: usize = 4096;

/// [`System`], with large blocks mapped apart on huge pages.
pub struct HugeForLarge;

/// Whether a block of this layout has a mapping of its own.
fn mapped(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

/// The length of a large block's mapping: whole huge pages, so that Linux
/// (since 6.7) places it on a huge-page boundary and it holds no partial
/// one. The rest of the last huge page is never touched by the block.
fn mapping_len(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

/// A new mapping of `len` bytes, advised as huge-page memory; null if
/// Linux refuses the mapping (a refused advice changes nothing).
fn map(len: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping, at an address Linux chooses,
    // overlaps nothing of the process's.
    let Ok(ptr) = (unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    }) else {
        return std::ptr::null_mut();
    };
    advise(ptr, len);
    ptr.cast()
}

/// Advises a whole mapping as huge-page memory.
fn advise(ptr: *mut c_void, len: usize) {
    // SAFETY: the range is a whole mapping this allocator made; advice
    // changes how its pages are backed, never what they hold.
    let _ = unsafe { rustix::mm::madvise(ptr, len, Advice::LinuxHugepage) };
}

// SAFETY: small blocks are the system allocator's, with the caller's
// arguments unchanged. A large block is a whole mapping of
// `mapping_len(size)` bytes, page-aligned (and its layout's alignment is
// at most a page), zeroed when new, and only unmapped or remapped whole
// by `dealloc` and `realloc` with that same layout.
unsafe impl GlobalAlloc for HugeForLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            map(mapping_len(layout.size()))
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            // A new anonymous mapping reads as zeros.
            map(mapping_len(layout.size()))
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout.size(), layout.align()) {
            // SAFETY: `ptr` is a whole mapping of this length (`alloc`).
            let _ = unsafe { rustix::mm::munmap(ptr.cast(), mapping_len(layout.size())) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (mapped(layout.size(), align), mapped(new_size, align)) {
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            (true, true) => {
                let (old, new) = (mapping_len(layout.size()), mapping_len(new_size));
                if old == new {
                    return ptr;
                }
                // SAFETY: `ptr` is a whole mapping of `old` bytes; moved
                // (if at all) as a whole, keeping its contents and advice.
                match unsafe { rustix::mm::mremap(ptr.cast(), old, new, MremapFlags::MAYMOVE) } {
                    Ok(moved) => moved.cast(),
                    Err(_) => std::ptr::null_mut(),
                }
            }
            // Across the threshold: a new block, the contents copied, the
            // old block freed (only if the new one was given).
            _ => {
                // SAFETY: the caller guarantees `new_size`, rounded up to
                // `align`, does not overflow `isize`.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

/// For `strata evaluate`: the system allocator keeps what is freed of its
/// blocks (those under [`LARGE`]) for the blocks that follow, rather than
/// giving it back to Linux to be zeroed again when next asked for. Each
/// as-of date makes and frees the same columns, and the predictions'
/// encoders their buffers, so the same memory serves every date: 12 dates
/// at 1M persons about 6% faster (15 of 17 pairs of runs), with about a
/// quarter fewer page faults and about 2% more peak memory; one date unchanged
/// (docs/performance.md). `strata run` was no faster with it and its peak
/// memory 3% to 6% higher, so it is left as glibc sets it.
///
/// glibc's own thresholds move with what a run frees, and setting either
/// stops that: both are set, blocks under [`LARGE`] from its heaps (those
/// from it are this allocator's own mappings) and up to 1 GiB free at a
/// heap's top kept. Other C libraries are left as they are.
pub fn keep_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `mallopt` only sets two of glibc's thresholds, under its
    // own lock; no memory changes hands.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_mapped_in_whole_huge_pages() {
        assert!(!mapped(LARGE - 1, 8));
        assert!(mapped(LARGE, 8));
        assert!(mapped(LARGE, PAGE));
        // An alignment a mapping cannot promise stays with the system's.
        assert!(!mapped(LARGE, 2 * PAGE));
        assert_eq!(mapping_len(HUGE_PAGE), HUGE_PAGE);
        assert_eq!(mapping_len(HUGE_PAGE + 1), 2 * HUGE_PAGE);
        assert_eq!(mapping_len(3 * HUGE_PAGE - 1), 3 * HUGE_PAGE);
    }

    /// The flags of the mapping that holds `len` bytes from `ptr` whole,
    /// from `/proc/self/smaps`; None if no one mapping holds them.
    fn flags_of_mapping_holding(ptr: *const u8, len: usize) -> Option<Vec<String>> {
        let (start, end) = (ptr as usize, ptr as usize + len);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut holds = false;
        for line in smaps.lines() {
            // A mapping's header: `from-to perms offset ...`.
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                holds = from <= start && end <= to;
            } else if holds && let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(flags.split_whitespace().map(String::from).collect());
            }
        }
        None
    }

    /// Grown by doubling as a vector grows, and shrunk, a large block stays
    /// one advised mapping (not split: glibc's blocks were, and could no
    /// longer grow in place), keeping its contents; and across the
    /// threshold both ways.
    #[test]
    fn a_large_block_is_one_advised_mapping_as_it_grows_and_shrinks() {
        let a = HugeForLarge;
        let fill = |p: *mut u8, from: usize, to: usize| {
            (from.next_multiple_of(4093)..to)
                .step_by(4093)
                .for_each(|i| unsafe { *p.add(i) = (i % 251) as u8 })
        };
        let kept = |p: *mut u8, to: usize| {
            (0..to)
                .step_by(4093)
                .all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
        };
        unsafe {
            let mut size = 1000;
            let mut p = a.alloc(Layout::from_size_align(size, 8).unwrap());
            assert!(!p.is_null());
            fill(p, 0, size);
            while size < 64 * HUGE_PAGE {
                let grown = size * 2 + 3;
                p = a.realloc(p, Layout::from_size_align(size, 8).unwrap(), grown);
                assert!(!p.is_null());
                assert!(kept(p, size), "contents lost growing {size} to {grown}");
                fill(p, size, grown);
                size = grown;
                if mapped(size, 8) {
                    let flags = flags_of_mapping_holding(p, size)
                        .unwrap_or_else(|| panic!("{size} bytes in no one mapping"));
                    assert!(flags.iter().any(|f| f == "hg"), "not advised: {flags:?}");
                }
            }
            for shrunk in [5 * HUGE_PAGE + 7, LARGE, 1000] {
                p = a.realloc(p, Layout::from_size_align(size, 8).unwrap(), shrunk);
                assert!(!p.is_null());
                assert!(kept(p, shrunk), "contents lost shrinking to {shrunk}");
                size = shrunk;
            }
            a.dealloc(p, Layout::from_size_align(size, 8).unwrap());
            let zeroed = Layout::from_size_align(3 * HUGE_PAGE + 5, 8).unwrap();
            let z = a.alloc_zeroed(zeroed);
            assert!(!z.is_null());
            assert!((0..zeroed.size()).step_by(4093).all(|i| *z.add(i) == 0));
            a.dealloc(z, zeroed);
        }
    }
}
