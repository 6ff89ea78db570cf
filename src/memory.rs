//! Process memory: what the run reports (`peak_rss_mib`) and handing freed heap back.

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
/// the blocking pool, rayon). On the 250k-pair bench, `gdo select --goal temp_plus`
/// (4 runs each) peaked at 332-362 MiB with glibc's default and 278-298 MiB with two
/// arenas at the same speed (test profile); a release build peaked at 320-342 MiB by
/// default, 269-296 MiB with two arenas and 258-261 MiB with one, the last about 8%
/// slower (the threads then queue on one lock). `--all-goals`: 470-500 vs 380-400 MiB
/// with two arenas, same speed.
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
/// subsets' rows, and handing its freed buffers back before the rows are reordered
/// lowered the single-goal peak from 278-298 to 263-274 MiB (test profile, 4 runs).
/// Memory handed back is faulted in again when reused, so it costs time.
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
/// again for the next chunk. On the 250k-pair bench (test profile, 3 runs each, with
/// the chunk reader that reads into the chunk's own buffer): 76-79k page faults and
/// 0.18-0.20 s of system time before, 37k and 0.10-0.11 s after, wall time 0.71-0.75
/// vs 0.63-0.70 s; peak RSS 154-178 vs 173-177 MiB. Not for `gdo select`, whose peak
/// is a target.
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
