//! A joiner opening a big group's out-of-band ratchet tree. See
//! `hush_fuzz::tree_blob_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::tree_blob_open(data);
});
