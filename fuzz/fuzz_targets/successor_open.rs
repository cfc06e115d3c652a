//! The successor a key-update commit names. See `hush_fuzz::successor_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::successor_open(data);
});
