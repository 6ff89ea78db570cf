//! Process memory: what the run reports (`peak_rss_mib`) and handing freed heap back.

// glibc allocator calls (mallopt, malloc_trim, mallinfo2) through libc.
#![allow(unsafe_code)]

/// Peak resident memory of this process so far (Linux; None elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    proc_status_mib("VmHWM:")
}

/// Resident memory of this process now (Linux; None elsewhere).
pub fn rss_mib() -> Option<f64> {
    proc_status_mib("VmRSS:")
}

fn proc_status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Let every thread allocate from one of two heap arenas (glibc; a no-op elsewhere).
///
/// Call before any thread starts. glibc gives threads up to 8 arenas per core, and
/// memory freed in one arena is not reused by a thread allocating from another, so a
/// phase's peak stacks on what earlier phases freed on other threads (tokio workers,
/// the blocking pool, rayon). Two arenas lower select's peak at the same speed; one
/// would queue the threads on one lock (measurements: docs/performance-notes.md,
/// "Memory").
pub fn share_heap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; any value is valid to pass.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Return the heap's free pages to the operating system (glibc; a no-op elsewhere).
///
/// For the moment after a phase that allocated far more than it kept, just before the
/// next one allocates again: `gdo select`'s pool scan decodes every row to keep the
/// subsets' rows; handing its freed buffers back before the rows are reordered lowers
/// the single-goal peak. Memory handed back is faulted in again when reused, so it
/// costs time.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keep freed heap for reuse instead of handing it back to the OS, for the rest of the
/// process.
///
/// For `gdo ingest`, which allocates and frees blocks of the same sizes over and over
/// (a 4 MiB input chunk, its column builders, the Parquet pages, per chunk). With
/// glibc's defaults those blocks are unmapped or trimmed when freed and faulted in
/// again for the next chunk; keeping them halves ingest's page faults. Not for `gdo
/// select`, whose peak is a target.
pub fn keep_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; any value is valid to pass.
    unsafe {
        // Blocks under 32 MiB come from the heap, not from mmap of their own.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // Free memory at the top of a heap stays mapped up to 256 MiB ...
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        // ... and the heap grows in steps of 64 MiB.
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}
