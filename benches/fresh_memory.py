"""How fast this machine hands a process memory it has not touched yet:
the cost behind much of a run's system CPU time, and behind most of the
run-to-run noise of the timings `benches/` print. Prints figures; asserts
nothing.

    python3 benches/fresh_memory.py [GIB=1] [IDLE_SECONDS=20]

Maps GIB GiB (advised as huge-page memory, as strata maps its large
blocks), writes a byte to every 4 KiB page, and times it; then once more at
once (the pages the first mapping gave back are still at hand); then again
after IDLE_SECONDS seconds idle. On a machine of its own the three are
alike (Linux zeroing pages, several GB/s). On a virtual machine whose host
takes back memory a guest frees (a balloon device's free page reporting,
for one), the first and last can be many times slower: each page is then
found and zeroed by the host as well, and a run pays for every byte of its
peak memory, and for memory it frees and takes again, that way.
"""

import mmap
import sys
import time

PAGE = 4096


def touch(size):
    """Seconds to write a byte to each page of a fresh mapping of `size`."""
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        mapping.madvise(mmap.MADV_HUGEPAGE)
    started = time.perf_counter()
    for offset in range(0, size, PAGE):
        mapping[offset] = 1
    seconds = time.perf_counter() - started
    mapping.close()
    return seconds


def main():
    gib = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    size = int(gib * (1 << 30)) // PAGE * PAGE
    fresh = touch(size)
    at_once = touch(size)
    # What the loop costs without the kernel: the same writes again to
    # pages already present.
    mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for offset in range(0, size, PAGE):
        mapping[offset] = 1
    started = time.perf_counter()
    for offset in range(0, size, PAGE):
        mapping[offset] = 2
    loop = time.perf_counter() - started
    mapping.close()
    time.sleep(idle)
    after_idle = touch(size)

    print(f"{gib:g} GiB, a byte written to each 4 KiB page (the loop alone: {loop:.3f} s)")
    for label, seconds in [
        ("fresh", fresh),
        ("again at once", at_once),
        (f"again after {idle:g} s idle", after_idle),
    ]:
        faulting = max(seconds - loop, 1e-9)
        print(f"{label:34} {seconds:6.3f} s   {size / faulting / 1e9:6.2f} GB/s")

if __name__ == "__main__":
    main()
