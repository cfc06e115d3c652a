//! Channel descriptors, posts and links. See `hush_fuzz::channel_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::channel_open(data);
});
