//! `heap::retain_freed_memory`: memory the process frees stays with the allocator for reuse
//! instead of going back to the operating system. No test harness: the check runs on the main
//! thread, whose allocations come from glibc's main heap (the one the default settings trim),
//! and no other test's allocations can reuse the freed memory before it is counted.

use bevy_mvcustom::heap::retain_freed_memory;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn main() {
    const BLOCK: usize = 64 << 10;
    const TOTAL: usize = 64 << 20;
    assert!(retain_freed_memory(), "mallopt refused the settings");
    // Blocks below glibc's mmap threshold come from the heap; freed together they coalesce
    // into its top, which the default settings would hand back to the system (all but
    // 128 KiB of it).
    let blocks: Vec<Vec<u8>> = (0..TOTAL / BLOCK).map(|k| vec![k as u8; BLOCK]).collect();
    assert_eq!(blocks.iter().map(Vec::len).sum::<usize>(), TOTAL);
    drop(blocks);
    // SAFETY: `mallinfo2` only reads the allocator's statistics.
    let free_held = unsafe { libc::mallinfo2() }.fordblks;
    assert!(
        free_held >= TOTAL,
        "the allocator holds {free_held} free bytes after {TOTAL} were freed"
    );
    println!("heap: {free_held} freed bytes kept for reuse");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn main() {
    assert!(
        !retain_freed_memory(),
        "applied on a platform without glibc"
    );
}
