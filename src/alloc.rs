//! Allocator tuning for processes that use mimalloc as their global
//! allocator (the `corelog` binary and the benchmarks).
//!
//! mimalloc gives freed memory back to the OS 10 ms after it is freed by
//! default. corelog frees and reallocates large buffers (request frames,
//! record batches, read buffers) all the time, and every buffer that comes
//! back from the OS is faulted in and zeroed page by page: in the produce
//! benchmark that was over a fifth of the broker core's time
//! (`clear_page_erms`). Keeping freed memory for a second removes that
//! while still returning it after a burst.

/// mimalloc's `mi_option_purge_delay` (the same index in v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays in the process before it is returned.
pub const PURGE_DELAY_MS: i64 = 1000;

/// Applies the tuning; call once, early in `main`. An operator's own
/// `MIMALLOC_PURGE_DELAY` wins.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: setting an option is allowed at any time and has no
    // preconditions beyond a valid option index.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS as _) };
}

/// Returns memory freed on this thread longer than [`PURGE_DELAY_MS`] ago
/// to the OS. mimalloc purges lazily, when the thread allocates again, so a
/// shard that goes quiet after a burst (say, many large frames whose
/// connections then closed) would keep it; each shard calls this about once
/// per purge delay. Harmless where mimalloc is not the allocator.
pub fn collect() {
    // SAFETY: mi_collect only walks this thread's heap; no preconditions.
    unsafe { libmimalloc_sys::mi_collect(false) };
}
