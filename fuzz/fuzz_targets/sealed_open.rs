//! `open_envelope`, a device opening a sealed envelope. See `hush_fuzz::sealed_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::sealed_open(data);
});
