//! `verity::verify` (what `inspect` runs on a user's disk) needs memory independent of the sizes
//! the disk claims: measured with a counting allocator on a 256 MiB data device of 512-byte
//! blocks (half a million digests: a whole-tree approach holds tens of MiB).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use builder::verity::{self, Params, Region};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        // SAFETY: p came from System.alloc with this layout.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn verify_memory_does_not_grow_with_the_device() {
    const LEN: u64 = 256 << 20;
    let data = tempfile::tempfile().unwrap();
    data.set_len(LEN).unwrap(); // sparse zeros
    let p = Params {
        data_block_size: 512,
        hash_block_size: 4096,
        salt: vec![1; 32],
        uuid: [0; 16],
    };
    let region = Region {
        file: &data,
        offset: 0,
        len: LEN,
    };
    let mut tree = Vec::new();
    let info = verity::format(region, &mut tree, &p).unwrap();
    let mut hash = tempfile::tempfile().unwrap();
    hash.write_all(&tree).unwrap();
    let tree_len = tree.len() as u64;
    drop(tree);
    let hash_region = Region {
        file: &hash,
        offset: 0,
        len: tree_len,
    };
    // Warm up rayon's pool outside the measurement.
    verity::verify(region, hash_region, &info.root_hash).unwrap();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    verity::verify(region, hash_region, &info.root_hash).unwrap();
    let peak = PEAK.load(Relaxed) - base;
    assert!(
        peak < 4 << 20,
        "verify of {LEN} bytes in 512-byte blocks ({} KiB of digests) allocated {} KiB at its peak",
        (LEN / 512 * 32) >> 10,
        peak >> 10
    );
}
