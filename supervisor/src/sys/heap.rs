//! Giving freed heap memory back to the kernel.
//!
//! glibc keeps memory freed by a thread in that thread's arena for reuse; a
//! large, short-lived allocation (the JSON of a thousand programs) would
//! otherwise stay in the daemon's RSS for good. `malloc_trim(0)` returns the
//! free pages of every arena. Other C libraries have no such call (and
//! usually return memory on their own): there it does nothing.

/// Returns free heap pages to the kernel; cheap when there are none.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no pointer arguments and is thread-safe (it takes each arena's lock).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keeps large allocations (the JSON of thousands of programs) in their own
/// mappings, given back to the kernel as soon as they are freed. glibc
/// otherwise raises its mmap threshold to the size of the largest block
/// freed, and later large blocks stay in the heap, where small live
/// allocations around them keep the pages from ever being returned.
pub fn keep_large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it has no pointer
    // arguments. Setting M_MMAP_THRESHOLD (to glibc's own default) turns off
    // the dynamic threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}
