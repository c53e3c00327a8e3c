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
//! with both copies resident. Here a large block grows by `mremap` of its
//! whole mapping (one made of kept mappings' pages, below, is several
//! mappings to Linux and grows by a copy) and shrinks by giving up its
//! tail. Whether a block is large is decided by its
//! layout alone, so freeing needs no header. Where transparent huge pages
//! are `never` the mappings are plain ones, as glibc's own for blocks over
//! its mmap threshold.
//!
//! For `strata evaluate` ([`keep_freed_memory`]) a freed large block's
//! mapping is kept for the large blocks that follow rather than unmapped:
//! each as-of date makes and frees the same per-person columns, and a new
//! mapping's pages are zeroed by Linux as each is first touched, a fifth
//! of the CPU of 12 dates at 1M persons. What is kept is bounded: the
//! large blocks live and kept never take more mapped memory than the
//! large blocks live at once ever needed ([`Kept`]); within that bound a
//! block that grows moves into a kept mapping rather than growing with
//! fresh pages, a block larger than any kept mapping is made of several
//! kept ones' pages, moved together, and the tails of mappings cut to size
//! are kept too. Kept
//! pages stay resident and serve large blocks only: memory freed by large
//! blocks is not there for a later phase's small ones.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub struct HugeForLarge {
    /// Freed large blocks' mappings, kept while `keeping` is set.
    kept: Mutex<Kept>,
    keeping: &'static AtomicBool,
}

/// Whether the binary's allocator keeps freed large blocks
/// ([`keep_freed_memory`]).
static KEEPING: AtomicBool = AtomicBool::new(false);

impl HugeForLarge {
    /// The binary's allocator: keeps freed large blocks once
    /// [`keep_freed_memory`] is called.
    pub const fn new() -> HugeForLarge {
        HugeForLarge::keeping(&KEEPING)
    }

    const fn keeping(keeping: &'static AtomicBool) -> HugeForLarge {
        HugeForLarge {
            kept: Mutex::new(Kept {
                blocks: [(0, 0); SLOTS],
                len: 0,
            }),
            keeping,
        }
    }

    /// A mapping of `len` bytes made of kept ones, its first `zero` bytes
    /// zeroed; None if none is kept (or keeping is off).
    fn reuse(&self, len: usize, zero: usize) -> Option<*mut u8> {
        // SAFETY: `move_huge_page` moves one huge page as `mremap` does.
        unsafe { self.reuse_by(len, zero, |from, to| move_huge_page(from, to)) }
    }

    /// [`HugeForLarge::reuse`], each huge page moved by `move_one` (as
    /// [`move_pages_by`]): the tests' way to make a move fail there.
    ///
    /// # Safety
    ///
    /// `move_one` moves one huge page as `mremap` would.
    unsafe fn reuse_by(
        &self,
        len: usize,
        zero: usize,
        mut move_one: impl FnMut(*mut u8, *mut u8) -> bool,
    ) -> Option<*mut u8> {
        if !self.keeping.load(Ordering::Relaxed) {
            return None;
        }
        // Held until the block is made, so that what is kept is given back
        // (below) before another block is served.
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len == 0 {
            return None;
        }
        if let Some((ptr, had)) = kept.take_fitting(len) {
            if had > len {
                // The tail, whole huge pages, kept for the blocks that
                // follow.
                // SAFETY: `had - len` bytes from `ptr + len` are the end
                // of a kept mapping no one else holds.
                unsafe { kept.keep_or_unmap(ptr.add(len), had - len) };
            }
            drop(kept);
            // SAFETY: `zero` is at most the block's size, at most `len`.
            unsafe { std::ptr::write_bytes(ptr, 0, zero) };
            return Some(ptr);
        }
        // None large enough: the block made of kept mappings, the largest
        // first, their pages moved side by side into a new mapping of its
        // length (moved, not copied), the rest of it fresh. Growing the
        // largest in place, and giving back as much of the others, had
        // brought about a quarter of the fresh pages 12 dates at 1M
        // persons touched after their scan, with more than enough kept.
        let base = map(len);
        if base.is_null() {
            return None;
        }
        let mut filled = 0;
        while filled < len {
            let Some((from, had)) = kept.take_largest() else {
                break;
            };
            let wanted = had.min(len - filled);
            // SAFETY: `from` is a kept mapping of `had` bytes no one holds,
            // `base + filled` the fresh part of the new one.
            let moved = unsafe { move_pages_by(from, wanted, base.add(filled), &mut move_one) };
            let done = moved.unwrap_or_else(|hole| hole);
            if let Err(hole) = moved {
                // A hole another mapping may fill (or the fresh page Linux
                // left, which cannot be told from one): left alone, what
                // is ours of the new mapping around it given back, and the
                // rest of the piece whose move failed (kept, it would be
                // tried first again), no block made of it; as much of what
                // is kept given back as the fresh block the caller maps.
                let (at, after) = (filled + hole, filled + hole + HUGE_PAGE);
                // SAFETY: the new mapping but the hole, and the rest of a
                // kept mapping taken from `kept`: ours, no one holds them.
                unsafe {
                    let _ = rustix::mm::munmap(base.cast(), at);
                    let _ = rustix::mm::munmap(base.add(after).cast(), len - after);
                    let _ = rustix::mm::munmap(from.add(done).cast(), had - done);
                }
                kept.release(len);
                return None;
            }
            if done < had {
                // SAFETY: what was not moved of it, still kept.
                unsafe { kept.keep_or_unmap(from.add(done), had - done) };
            }
            filled += done;
            if done < wanted {
                break;
            }
        }
        // Mapped anew: the fresh part; as much of what is kept given back.
        kept.release(len - filled);
        drop(kept);
        // SAFETY: only the first `filled` bytes can have been written.
        unsafe { std::ptr::write_bytes(base, 0, zero.min(filled)) };
        Some(base)
    }

    /// Keeps a freed block's mapping of `len` bytes; false where it is not
    /// kept (keeping is off, or every slot is taken).
    fn keep(&self, ptr: *mut u8, len: usize) -> bool {
        if !self.keeping.load(Ordering::Relaxed) {
            return false;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.put(ptr, len)
    }

    /// A live block of `old` mapped bytes (`size` of them its contents)
    /// moved into a kept mapping of at least `new` bytes, its own mapping
    /// kept in turn; None where none is kept that large (or keeping is
    /// off). Copying the contents costs less than the fresh pages growing
    /// the mapping in place would bring: a page first touched is zeroed
    /// by Linux, and on a virtual machine whose host takes back what the
    /// guest frees, brought in again by the host (`docs/performance.md`).
    ///
    /// # Safety
    ///
    /// `ptr` is a live large block's whole mapping of `old` bytes, at
    /// least `size` of them its contents; it is not used again.
    unsafe fn move_to_kept(
        &self,
        ptr: *mut u8,
        old: usize,
        size: usize,
        new: usize,
    ) -> Option<*mut u8> {
        if !self.keeping.load(Ordering::Relaxed) {
            return None;
        }
        let (to, had) = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            let (to, had) = kept.take_fitting(new)?;
            if had > new {
                // SAFETY: the end of a kept mapping no one else holds.
                unsafe { kept.keep_or_unmap(to.add(new), had - new) };
            }
            (to, had)
        };
        debug_assert!(had >= new);
        // SAFETY: `to` is a kept mapping of at least `new > size` bytes no
        // one else holds, apart from `ptr`'s.
        unsafe { std::ptr::copy_nonoverlapping(ptr, to, size) };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the caller's block, whole, no longer used.
        unsafe { kept.keep_or_unmap(ptr, old) };
        Some(to)
    }

    /// Unmaps kept mappings of at least `bytes` (or all), as a live block
    /// grows by that much in place.
    fn release(&self, bytes: usize) {
        if !self.keeping.load(Ordering::Relaxed) {
            return;
        }
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(bytes);
    }

    /// A large block: a kept mapping if one serves, else a new one.
    fn map_block(&self, size: usize, zeroed: bool) -> *mut u8 {
        let len = mapping_len(size);
        self.reuse(len, if zeroed { size } else { 0 })
            .unwrap_or_else(|| map(len))
    }
}

impl Default for HugeForLarge {
    fn default() -> Self {
        HugeForLarge::new()
    }
}

/// How many freed mappings are kept at most.
const SLOTS: usize = 256;

/// Freed large blocks' mappings, as (address, length), for the blocks that
/// follow. A block is served by the smallest kept mapping at least its
/// size, its tail kept apart (whole huge pages: a mapping's part is
/// unmapped or remapped like a whole one); failing that, by kept mappings'
/// pages moved side by side, the largest first, into a new mapping of its
/// size, what they do not fill fresh, and as many kept bytes unmapped as
/// that is. A live block that grows moves into a kept mapping that fits,
/// its own kept in its place; failing that it grows in place (a block of
/// several mappings, by a copy into a new block), as many kept bytes
/// unmapped as it grew. One that shrinks keeps its tail. So what is
/// mapped for large blocks, live and kept, only grows when nothing is
/// kept: never past the most the live ones needed at once (a block being
/// copied counts twice while it is, and a new mapping's pages not yet
/// replaced by kept ones are mapped for a moment, untouched). (Until
/// December 7th 2026 tails were unmapped, a block larger than any kept
/// grew the largest in place, and live blocks grew in place: each as-of
/// date's growing columns then emptied what was kept, and the next dates'
/// blocks were fresh pages.)
struct Kept {
    blocks: [(usize, usize); SLOTS],
    len: usize,
}

impl Kept {
    /// The largest kept mapping, if any.
    fn take_largest(&mut self) -> Option<(*mut u8, usize)> {
        let kept = &self.blocks[..self.len];
        let i = (0..kept.len()).max_by_key(|&i| kept[i].1)?;
        let (ptr, had) = self.remove(i);
        Some((ptr as *mut u8, had))
    }

    /// The smallest kept mapping at least `len` bytes long, if any.
    fn take_fitting(&mut self, len: usize) -> Option<(*mut u8, usize)> {
        let kept = &self.blocks[..self.len];
        let i = (0..kept.len())
            .filter(|&i| kept[i].1 >= len)
            .min_by_key(|&i| kept[i].1)?;
        let (ptr, had) = self.remove(i);
        Some((ptr as *mut u8, had))
    }

    /// Keeps `len` bytes from `ptr`, or unmaps them where every slot is
    /// taken.
    ///
    /// # Safety
    ///
    /// They are whole huge pages of this allocator's mappings that no one
    /// holds.
    unsafe fn keep_or_unmap(&mut self, ptr: *mut u8, len: usize) {
        if !self.put(ptr, len) {
            // SAFETY: the caller's.
            let _ = unsafe { rustix::mm::munmap(ptr.cast(), len) };
        }
    }

    /// Unmaps kept mappings of at least `bytes` (or all).
    fn release(&mut self, mut bytes: usize) {
        while bytes > 0 && self.len > 0 {
            let (p, l) = self.remove(self.len - 1);
            // SAFETY: a kept mapping, whole, that no one holds.
            let _ = unsafe { rustix::mm::munmap(p as *mut c_void, l) };
            bytes = bytes.saturating_sub(l);
        }
    }

    fn remove(&mut self, i: usize) -> (usize, usize) {
        let block = self.blocks[i];
        self.len -= 1;
        self.blocks[i] = self.blocks[self.len];
        block
    }

    fn put(&mut self, ptr: *mut u8, len: usize) -> bool {
        if self.len == SLOTS {
            return false;
        }
        self.blocks[self.len] = (ptr as usize, len);
        self.len += 1;
        true
    }
}

impl Drop for HugeForLarge {
    fn drop(&mut self) {
        let kept = self.kept.get_mut().unwrap_or_else(|e| e.into_inner());
        while kept.len > 0 {
            let (p, l) = kept.remove(kept.len - 1);
            // SAFETY: a kept mapping, whole, that no one holds.
            let _ = unsafe { rustix::mm::munmap(p as *mut c_void, l) };
        }
    }
}

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

/// Moves the huge page at `from` to `to`, replacing what is mapped there;
/// false where Linux refuses.
///
/// # Safety
///
/// Both are whole huge pages of this allocator's mappings that no one
/// holds.
unsafe fn move_huge_page(from: *mut u8, to: *mut u8) -> bool {
    // SAFETY: the caller's.
    unsafe {
        rustix::mm::mremap_fixed(
            from.cast(),
            HUGE_PAGE,
            HUGE_PAGE,
            MremapFlags::MAYMOVE,
            to.cast(),
        )
    }
    .is_ok()
}

/// Moves the pages of `len` bytes from `from` to `to`, a huge page at a
/// time by `move_one(from, to)` (false where the move failed; `mremap`
/// by [`move_huge_page`], or the tests' way to make a move fail), each
/// replacing the fresh page of the mapping at `to`: `Ok` with how many
/// bytes were moved, from the start, or `Err` with the offset of a hole.
/// A huge page at a time because Linux moves no range across two
/// mappings (before 6.17), and a kept range may be several (a block made
/// by [`HugeForLarge`]'s `reuse`, whose parts start at whole huge pages
/// from its start, so that no huge page of it straddles two). Where a move
/// fails, Linux (before 6.18 at least) may have unmapped its destination
/// already: that huge page is mapped again, fresh, but never over a
/// mapping another thread has made there since (`MAP_FIXED_NOREPLACE`);
/// where it cannot be (something is mapped there: another's, or the fresh
/// page Linux left), it is told as a hole, to be left alone, and the range
/// is not to be used as a block.
///
/// # Safety
///
/// Both ranges are whole huge pages of this allocator's mappings that no
/// one holds, the one at `to` fresh; `move_one` moves one huge page as
/// `mremap` would.
unsafe fn move_pages_by(
    from: *mut u8,
    len: usize,
    to: *mut u8,
    mut move_one: impl FnMut(*mut u8, *mut u8) -> bool,
) -> Result<usize, usize> {
    for offset in (0..len).step_by(HUGE_PAGE) {
        // SAFETY: the caller's ranges; `offset + HUGE_PAGE` is within both.
        let (from, to) = unsafe { (from.add(offset), to.add(offset)) };
        if !move_one(from, to) {
            return if map_again(to, HUGE_PAGE) {
                Ok(offset)
            } else {
                Err(offset)
            };
        }
    }
    Ok(len)
}

/// Maps `len` fresh bytes at `at` again, where a failed move unmapped
/// them, unless something else has been mapped there since; false if not.
fn map_again(at: *mut u8, len: usize) -> bool {
    // SAFETY: a new private anonymous mapping, made only where nothing is
    // mapped (an older Linux takes the address as a hint: checked below).
    let Ok(got) = (unsafe {
        rustix::mm::mmap_anonymous(
            at.cast(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::FIXED_NOREPLACE,
        )
    }) else {
        return false;
    };
    if got.cast() != at {
        // SAFETY: the mapping just made, elsewhere.
        let _ = unsafe { rustix::mm::munmap(got, len) };
        return false;
    }
    advise(got, len);
    true
}

/// Advises a whole mapping as huge-page memory.
fn advise(ptr: *mut c_void, len: usize) {
    // SAFETY: the range is a whole mapping this allocator made; advice
    // changes how its pages are backed, never what they hold.
    let _ = unsafe { rustix::mm::madvise(ptr, len, Advice::LinuxHugepage) };
}

// SAFETY: small blocks are the system allocator's, with the caller's
// arguments unchanged. A large block is `mapping_len(size)` bytes of
// mapped memory that no other block holds (one mapping, part of one, or
// several side by side, whole huge pages each), page-aligned (and its
// layout's alignment is at most a page), zeroed when new, and given up,
// kept or remapped only by `dealloc` and `realloc` with that same layout.
unsafe impl GlobalAlloc for HugeForLarge {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            self.map_block(layout.size(), false)
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout.size(), layout.align()) {
            // A new anonymous mapping reads as zeros; a kept one is zeroed.
            self.map_block(layout.size(), true)
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout.size(), layout.align()) {
            let len = mapping_len(layout.size());
            if !self.keep(ptr, len) {
                // SAFETY: `ptr` is a whole mapping of this length (`alloc`).
                let _ = unsafe { rustix::mm::munmap(ptr.cast(), len) };
            }
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
                if new < old {
                    // Shrunk: its tail (whole huge pages) kept, or given
                    // back.
                    // SAFETY: the end of the block's own mapping.
                    let tail = unsafe { ptr.add(new) };
                    if !self.keep(tail, old - new) {
                        let _ = unsafe { rustix::mm::munmap(tail.cast(), old - new) };
                    }
                    return ptr;
                }
                if let Some(moved) = unsafe { self.move_to_kept(ptr, old, layout.size(), new) } {
                    return moved;
                }
                // SAFETY: `ptr` is a whole mapping of `old` bytes; moved
                // (if at all) as a whole, keeping its contents and advice.
                match unsafe { rustix::mm::mremap(ptr.cast(), old, new, MremapFlags::MAYMOVE) } {
                    Ok(moved) => {
                        // Grown: as much of what is kept given back (`Kept`).
                        self.release(new - old);
                        moved.cast()
                    }
                    // A block made of several kept mappings (`reuse`) is
                    // several mappings to Linux, which remaps none across
                    // them: copied into a new block instead.
                    Err(_) => {
                        let to = self.map_block(new_size, false);
                        if !to.is_null() {
                            unsafe {
                                std::ptr::copy_nonoverlapping(ptr, to, layout.size());
                                self.dealloc(ptr, layout);
                            }
                        }
                        to
                    }
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
/// Large blocks' mappings are kept likewise ([`HugeForLarge`]'s `Kept`).
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
    KEEPING.store(true, Ordering::Relaxed);
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

    /// A freed large block serves the next: the same pages, zeroed where
    /// asked, cut to a smaller block's size (its tail kept apart) or grown
    /// to a larger one's; a live block grown moves into a kept mapping
    /// that fits, and shrunk keeps its tail; and never more kept than was
    /// freed.
    #[test]
    fn freed_large_blocks_serve_the_blocks_that_follow() {
        static ON: AtomicBool = AtomicBool::new(true);
        let a = HugeForLarge::keeping(&ON);
        let layout = |size| Layout::from_size_align(size, 64).unwrap();
        let kept = |a: &HugeForLarge| {
            let k = a.kept.lock().unwrap();
            let mut lens: Vec<usize> = k.blocks[..k.len].iter().map(|b| b.1 / HUGE_PAGE).collect();
            lens.sort_unstable();
            lens
        };
        unsafe {
            let big = layout(3 * HUGE_PAGE + 5);
            let p = a.alloc(big);
            std::ptr::write_bytes(p, 7, big.size());
            a.dealloc(p, big);
            assert_eq!(kept(&a), [4]);
            // The same pages, zeroed as asked.
            let z = a.alloc_zeroed(big);
            assert_eq!(z, p);
            assert!((0..big.size()).step_by(4093).all(|i| *z.add(i) == 0));
            assert_eq!(kept(&a), [] as [usize; 0]);
            a.dealloc(z, big);
            // A smaller block: the same mapping, its tail kept apart.
            let small = layout(HUGE_PAGE + 1);
            let s = a.alloc(small);
            assert_eq!(s, p);
            assert_eq!(kept(&a), [2]);
            std::ptr::write_bytes(s, 9, small.size());
            // The tail serves the next block that fits in it.
            let other = layout(LARGE);
            let o = a.alloc(other);
            assert_eq!(o, p.add(2 * HUGE_PAGE));
            assert_eq!(kept(&a), [1]);
            std::ptr::write_bytes(o, 3, other.size());
            // A live block grown into a kept mapping that fits: its
            // contents moved, its own mapping kept in its place.
            a.dealloc(s, small);
            assert_eq!(kept(&a), [1, 2]);
            let grown = a.realloc(o, other, HUGE_PAGE + 1);
            assert_eq!(grown, s);
            assert!((0..other.size()).step_by(4093).all(|i| *grown.add(i) == 3));
            assert_eq!(kept(&a), [1, 1]);
            // Shrunk, its tail kept.
            let shrunk = a.realloc(grown, layout(HUGE_PAGE + 1), LARGE);
            assert_eq!(shrunk, grown);
            assert_eq!(kept(&a), [1, 1, 1]);
            // A block larger than any kept: made of the kept mappings'
            // pages, moved side by side (the written ones among them),
            // zeroed as asked; one more huge page than they hold fresh,
            // and as much of what is kept given back (none is left).
            for (i, &(p, l)) in a.kept.lock().unwrap().blocks[..3].iter().enumerate() {
                std::ptr::write_bytes(p as *mut u8, 11 + i as u8, l);
            }
            let huge = layout(4 * HUGE_PAGE);
            let h = a.alloc_zeroed(huge);
            assert!((0..huge.size()).step_by(4093).all(|i| *h.add(i) == 0));
            assert_eq!(kept(&a), [] as [usize; 0]);
            // Several mappings to Linux, it grows by a copy: its contents
            // kept.
            assert!(flags_of_mapping_holding(h, huge.size()).is_none());
            std::ptr::write_bytes(h, 5, huge.size());
            let bigger = layout(6 * HUGE_PAGE);
            let h = a.realloc(h, huge, bigger.size());
            assert!(!h.is_null());
            assert!((0..huge.size()).step_by(4093).all(|i| *h.add(i) == 5));
            std::ptr::write_bytes(h, 6, bigger.size());
            // Shrunk and freed.
            let h = a.realloc(h, bigger, 3 * HUGE_PAGE);
            assert!((0..3 * HUGE_PAGE).step_by(4093).all(|i| *h.add(i) == 6));
            a.dealloc(h, layout(3 * HUGE_PAGE));
            a.dealloc(shrunk, other);
            let mut now = kept(&a);
            now.retain(|&l| l != 4);
            assert_eq!(now.iter().sum::<usize>(), 1 + 3 + 3);
            // Made again of every kept mapping, that of several mappings
            // among them (moved a huge page at a time).
            let all = kept(&a).iter().sum::<usize>() * HUGE_PAGE;
            let m = a.alloc_zeroed(layout(all));
            assert_eq!(kept(&a), [] as [usize; 0]);
            assert!((0..all).step_by(4093).all(|i| *m.add(i) == 0));
            std::ptr::write_bytes(m, 8, all);
            a.dealloc(m, layout(all));
            // A live block grown where nothing kept fits: remapped larger,
            // as much of what is kept given back as it grew.
            let before = kept(&a).iter().sum::<usize>();
            let g = a.alloc(other);
            let largest = *kept(&a).last().unwrap();
            let g = a.realloc(g, other, (largest + 1) * HUGE_PAGE);
            assert!(!g.is_null());
            std::ptr::write_bytes(g, 1, (largest + 1) * HUGE_PAGE);
            // (Whole mappings given back: at least as much as it grew.)
            assert!(kept(&a).iter().sum::<usize>() <= before - 1 - largest);
            a.dealloc(g, layout((largest + 1) * HUGE_PAGE));
        }
        // Off, nothing is kept.
        static OFF: AtomicBool = AtomicBool::new(false);
        let b = HugeForLarge::keeping(&OFF);
        unsafe {
            let big = layout(LARGE);
            let p = b.alloc(big);
            b.dealloc(p, big);
        }
        assert!(kept(&b).is_empty());
    }

    /// A move that fails at its second huge page says how far it got,
    /// the first moved: where Linux left the destination mapped, the page
    /// is told as a hole (it cannot be told from another's mapping) and
    /// left as it was; where Linux unmapped it first (older kernels), it
    /// is mapped again, fresh, unless another thread's mapping took it
    /// meanwhile. A destination mapped again never replaces a mapping.
    #[test]
    fn a_failed_move_leaves_no_hole_and_replaces_no_mapping() {
        let mover = |unmap_first: bool| {
            let mut moves = 0;
            move |from: *mut u8, to: *mut u8| {
                moves += 1;
                if moves == 1 {
                    return unsafe { move_huge_page(from, to) };
                }
                if unmap_first {
                    let _ = unsafe { rustix::mm::munmap(to.cast(), HUGE_PAGE) };
                }
                false
            }
        };
        for unmap_first in [false, true] {
            unsafe {
                let from = map(2 * HUGE_PAGE);
                std::ptr::write_bytes(from, 4, 2 * HUGE_PAGE);
                let to = map(2 * HUGE_PAGE);
                std::ptr::write_bytes(to, 7, 2 * HUGE_PAGE);
                let moved = move_pages_by(from, 2 * HUGE_PAGE, to, mover(unmap_first));
                assert!((0..HUGE_PAGE).step_by(4093).all(|i| *to.add(i) == 4));
                let second = to.add(HUGE_PAGE);
                match (unmap_first, moved) {
                    // Ours, as it was: told as a hole all the same.
                    (false, Err(at)) => {
                        assert_eq!(at, HUGE_PAGE);
                        assert!((0..HUGE_PAGE).step_by(4093).all(|i| *second.add(i) == 7));
                    }
                    // Mapped again, fresh.
                    (true, Ok(at)) => {
                        assert_eq!(at, HUGE_PAGE);
                        assert!((0..HUGE_PAGE).step_by(4093).all(|i| *second.add(i) == 0));
                    }
                    // Another thread's mapping took the hole: not touched.
                    (true, Err(at)) => assert_eq!(at, HUGE_PAGE),
                    other => panic!("{other:?}"),
                }
                let _ = rustix::mm::munmap(to.cast(), HUGE_PAGE);
                if moved.is_ok() || !unmap_first {
                    let _ = rustix::mm::munmap(second.cast(), HUGE_PAGE);
                }
                let _ = rustix::mm::munmap(from.add(HUGE_PAGE).cast(), HUGE_PAGE);
            }
        }
    }

    /// A block made of kept mappings whose page move fails: where the
    /// destination is left mapped (a hole, told from another's mapping by
    /// nothing), no block is made, the hole is left alone, and nothing is
    /// kept after it (the caller maps the block fresh); where Linux had
    /// unmapped the destination and it is mapped again, the block is the
    /// pages moved so far and fresh ones, what was not moved still kept
    /// until given back for the fresh part.
    #[test]
    fn a_block_of_kept_mappings_whose_move_fails_is_given_up_or_made_fresh() {
        static ON: AtomicBool = AtomicBool::new(true);
        let layout = |size| Layout::from_size_align(size, 64).unwrap();
        let kept_len = |a: &HugeForLarge| a.kept.lock().unwrap().len;
        // (the move that fails, counted from 1; whether Linux unmapped its
        // destination first)
        for (fails, unmap_first) in [(2, false), (3, false), (2, true)] {
            let a = HugeForLarge::keeping(&ON);
            unsafe {
                // Two kept mappings of two huge pages, written.
                let two = layout(2 * HUGE_PAGE);
                let (p, q) = (a.alloc(two), a.alloc(two));
                std::ptr::write_bytes(p, 1, two.size());
                std::ptr::write_bytes(q, 1, two.size());
                a.dealloc(p, two);
                a.dealloc(q, two);
                assert_eq!(kept_len(&a), 2);
                let mut calls = 0;
                let mut hole = std::ptr::null_mut();
                let mover = |from: *mut u8, to: *mut u8| {
                    calls += 1;
                    if calls < fails {
                        return move_huge_page(from, to);
                    }
                    hole = to;
                    if unmap_first {
                        let _ = rustix::mm::munmap(to.cast(), HUGE_PAGE);
                    }
                    false
                };
                // Larger than either: made of both, and one page fresh.
                let len = 5 * HUGE_PAGE;
                let block = a.reuse_by(len, 0, mover);
                assert_eq!(calls, fails);
                assert_eq!(kept_len(&a), 0);
                if unmap_first {
                    // The page moved, then fresh ones (the one mapped
                    // again among them); unless another test thread's
                    // mapping took the page meanwhile, when the block is
                    // given up as around a hole (not this test's to read).
                    if let Some(b) = block {
                        assert_eq!(hole, b.add(HUGE_PAGE));
                        assert!((0..HUGE_PAGE).step_by(4093).all(|i| *b.add(i) == 1));
                        assert!((HUGE_PAGE..len).step_by(4093).all(|i| *b.add(i) == 0));
                        std::ptr::write_bytes(b, 3, len);
                        a.dealloc(b, layout(len));
                    }
                } else {
                    assert!(block.is_none());
                    // The hole, ours, left as Linux left it: fresh.
                    assert!((0..HUGE_PAGE).step_by(4093).all(|i| *hole.add(i) == 0));
                    let _ = rustix::mm::munmap(hole.cast(), HUGE_PAGE);
                }
                // Blocks are still served.
                let next = a.alloc_zeroed(layout(len));
                assert!((0..len).step_by(4093).all(|i| *next.add(i) == 0));
                std::ptr::write_bytes(next, 4, len);
                a.dealloc(next, layout(len));
            }
        }
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
        let a = HugeForLarge::new();
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
