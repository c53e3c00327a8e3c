//! The process's allocator: the system's, with large blocks on huge pages.
//!
//! Why: a run's large arrays (per-person states and columns, and with
//! several as-of dates a state per person and date) are fresh memory that
//! Linux faults in 4 KiB at a time, zeroing each page as it is first
//! touched. At 5M persons the default model took about a million page
//! faults; 12 dates of `evaluate` at 1M about 770,000, with a sixth of the
//! CPU in the kernel. Every block of [`LARGE`] bytes or more is advised to
//! Linux as huge-page memory (`madvise(MADV_HUGEPAGE)`), so that where
//! transparent huge pages are enabled (`madvise` or `always` in
//! `/sys/kernel/mm/transparent_hugepage/enabled`) each fault brings in
//! 2 MiB: a quarter as many faults, and less time per byte (README,
//! "Performance"). Small blocks are left alone: advice would cost a system
//! call each, for memory the heap mostly reuses.
//!
//! The blocks are still the system allocator's, allocated and freed as
//! before; only the advice is added. Where Linux refuses it (no huge
//! pages) or transparent huge pages are `never`, nothing changes.

use std::alloc::{GlobalAlloc, Layout, System};

/// A huge page on x86-64 and on arm64 with 4 KiB pages.
const HUGE_PAGE: usize = 2 << 20;

/// Blocks at least this large are advised (the whole huge pages inside
/// them: none, where a block of under two straddles a boundary).
const LARGE: usize = HUGE_PAGE;

/// [`System`], advising large blocks as huge-page memory.
pub struct HugeForLarge;

/// The whole huge pages inside `len` bytes from `start`, as (start, length),
/// if the block is large and holds one.
fn huge_pages_within(start: usize, len: usize) -> Option<(usize, usize)> {
    if len < LARGE {
        return None;
    }
    let first = start.checked_next_multiple_of(HUGE_PAGE)?;
    let end = start.checked_add(len)? / HUGE_PAGE * HUGE_PAGE;
    (end > first).then(|| (first, end - first))
}

/// Advises the whole huge pages of a block just allocated.
fn advise(ptr: *mut u8, len: usize) {
    if ptr.is_null() {
        return;
    }
    let Some((start, len)) = huge_pages_within(ptr as usize, len) else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        // SAFETY: the range lies inside a block the system allocator has
        // just returned to this process; advice changes how its pages are
        // backed, never what they hold. A refusal is harmless.
        let _ = unsafe {
            rustix::mm::madvise(
                start as *mut std::ffi::c_void,
                len,
                rustix::mm::Advice::LinuxHugepage,
            )
        };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

// SAFETY: every method forwards its arguments to `System` unchanged and
// returns what it returns; `advise` only adds advice on the block returned.
unsafe impl GlobalAlloc for HugeForLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let ptr = unsafe { System.realloc(ptr, layout, new_size) };
        advise(ptr, new_size);
        ptr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_huge_pages_of_large_blocks_are_advised() {
        const H: usize = HUGE_PAGE;
        // Under the threshold: nothing, even where a huge page would fit.
        assert_eq!(huge_pages_within(H, LARGE - 1), None);
        // Exactly one aligned huge page.
        assert_eq!(huge_pages_within(H, H), Some((H, H)));
        // A block straddling one boundary holds no whole huge page.
        assert_eq!(huge_pages_within(H + 16, H), None);
        // One that reaches the next boundary but one holds the page between.
        assert_eq!(huge_pages_within(H + 16, 2 * H - 16), Some((2 * H, H)));
        // Starting 16 bytes past a boundary (a heap block's header): the
        // pages from the next boundary to the last one inside.
        assert_eq!(huge_pages_within(H + 16, 3 * H), Some((2 * H, 2 * H)));
        assert_eq!(huge_pages_within(H + 16, 3 * H - 17), Some((2 * H, H)));
        // Ending exactly on a boundary keeps the last page.
        assert_eq!(huge_pages_within(H - 4096, H + 4096), Some((H, H)));
        // A block at the top of the address space does not overflow.
        assert_eq!(huge_pages_within(usize::MAX - H, 2 * H), None);
    }

    /// Linux marks an advised mapping `hg` in `/proc/self/smaps`' flags.
    #[test]
    #[cfg(target_os = "linux")]
    fn a_large_block_reaches_linux_as_huge_page_memory() {
        if !std::path::Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            eprintln!("SKIPPED: this kernel has no transparent huge pages");
            return;
        }
        let layout = Layout::from_size_align(8 * HUGE_PAGE, 8).unwrap();
        let a = HugeForLarge;
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        let (inside, _) = huge_pages_within(p as usize, layout.size()).unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        // The mapping holding `inside`: its header line, then its fields.
        let mut flags = None;
        let mut holds = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((from, to)) = range.split_once('-')
                && let (Ok(from), Ok(to)) = (
                    usize::from_str_radix(from, 16),
                    usize::from_str_radix(to, 16),
                )
            {
                holds = (from..to).contains(&inside);
            } else if holds && let Some(f) = line.strip_prefix("VmFlags:") {
                flags = Some(f.split_whitespace().map(String::from).collect::<Vec<_>>());
            }
        }
        unsafe { a.dealloc(p, layout) };
        let flags = flags.expect("the block's mapping is in /proc/self/smaps");
        assert!(flags.iter().any(|f| f == "hg"), "flags {flags:?}");
    }

    #[test]
    fn blocks_keep_their_contents_through_growth_and_shrinking() {
        // Through the allocator itself: grown across the threshold (a
        // `realloc` that advises) and shrunk back, every byte kept.
        let a = HugeForLarge;
        let small = Layout::from_size_align(1000, 8).unwrap();
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..1000 {
                *p.add(i) = (i % 251) as u8;
            }
            let big = 3 * HUGE_PAGE + 123;
            let q = a.realloc(p, small, big);
            assert!(!q.is_null());
            assert!((0..1000).all(|i| *q.add(i) == (i % 251) as u8));
            for i in 1000..big {
                *q.add(i) = (i % 241) as u8;
            }
            let grown = Layout::from_size_align(big, 8).unwrap();
            let r = a.realloc(q, grown, 1000);
            assert!((0..1000).all(|i| *r.add(i) == (i % 251) as u8));
            a.dealloc(r, small);
            let z = a.alloc_zeroed(grown);
            assert!((0..big).step_by(4093).all(|i| *z.add(i) == 0));
            a.dealloc(z, grown);
        }
    }
}
