//! A group's invite links. See `hush_fuzz::group_links_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::group_links_decode(data);
});
