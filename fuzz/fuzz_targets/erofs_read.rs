//! Any byte string given to the EROFS reader yields a result or an error, never a panic,
//! an out-of-bounds read or an unbounded allocation.
#![no_main]

use builder::erofs::read::Image;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = Image::open(data) {
        let _ = img.scan();
    }
    if let Ok(img) = Image::open(data.to_vec()) {
        let _ = img.into_tree();
    }
});
