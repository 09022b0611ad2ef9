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
