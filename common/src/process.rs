//! Facts about this process that operators watch: its resident memory, for
//! `process_resident_memory_bytes` and the executors' answer to the driver's ping.
//!
//! Read from `/proc` rather than through a system-call crate: `/proc/self/status` gives the
//! resident set size in kB, so no page size is needed, and the common crate stays free of
//! platform bindings. Elsewhere than Linux the value is unknown (`None`).

/// The resident set size of this process in bytes (`VmRSS` of `/proc/self/status`), or `None`
/// when it cannot be read (not Linux, or `/proc` not mounted).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_bytes(&status)
}

/// The `VmRSS:` line of a `/proc/<pid>/status` text, in bytes (the kernel reports kB).
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut fields = line.split_whitespace();
    let kb: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") | None => kb.checked_mul(1024),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_in_bytes() {
        let status = "Name:\tsluice\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(12345 * 1024));
    }

    #[test]
    fn a_status_without_vm_rss_or_with_garbage_is_unknown() {
        assert_eq!(vm_rss_bytes("Name:\tkthreadd\nThreads:\t1\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\tmany kB\n"), None);
        assert_eq!(vm_rss_bytes("VmRSS:\t12 MB\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }
}
