//! Resident memory of this process from `/proc/self/status` (Linux): the peak (`VmHWM`) for
//! reports, and a reset of that peak (`/proc/self/clear_refs`) so a benchmark can measure the
//! peak of each stage on its own. Elsewhere every reading is `None`.

/// Peak resident set size of this process so far (or since [`reset_peak`]), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field("VmHWM")
}

/// Current resident set size of this process, in bytes.
pub fn current_rss_bytes() -> Option<u64> {
    status_field("VmRSS")
}

/// Resets the peak resident set size to the current one; `false` where the system does not
/// support it (then [`peak_rss_bytes`] keeps reporting the peak since start).
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_field(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib_field(&status, key)
}

/// The value of a `Key:   1234 kB` line of a `/proc/*/status` text, in bytes.
fn parse_kib_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") => value.checked_mul(1024),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kib_lines_of_proc_status() {
        let status = "Name:\tmvcustom\nVmPeak:\t  900 kB\nVmHWM:\t   13504 kB\nVmRSS:\t 12 kB\n";
        assert_eq!(parse_kib_field(status, "VmHWM"), Some(13504 * 1024));
        assert_eq!(parse_kib_field(status, "VmRSS"), Some(12 * 1024));
        assert_eq!(parse_kib_field(status, "VmSwap"), None);
        assert_eq!(parse_kib_field("VmHWM:\t12 pages\n", "VmHWM"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn peak_covers_an_allocation_and_resets() {
        let before = current_rss_bytes().unwrap();
        let block = vec![1u8; 128 << 20];
        std::hint::black_box(&block);
        let peak = peak_rss_bytes().unwrap();
        assert!(
            peak >= before + (128 << 20) - (1 << 20),
            "{before} -> {peak}"
        );
        drop(block);
        if reset_peak() {
            // The peak starts again from the current size, which no longer has the block.
            assert!(peak_rss_bytes().unwrap() < peak);
        }
    }
}
