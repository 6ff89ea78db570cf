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

/// Return the heap's free pages to the operating system.
///
/// glibc keeps freed memory in per-thread arenas, and a later allocation on another
/// thread (the rayon encoders, a fresh Arrow buffer) does not reuse it, so without
/// this a phase's peak stacks on everything earlier phases freed: on the 250k-pair
/// bench `gdo select` held about 100 MiB of free heap when it began writing outputs.
/// A no-op where the allocator is not glibc's.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
