//! Device-link codes, frames, welcomes and ready answers (decision 0023).
//! See `hush_fuzz::device_link_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::device_link_decode(data);
});
