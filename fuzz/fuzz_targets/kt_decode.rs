//! Key-transparency values, roots and proofs. See `hush_fuzz::kt_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::kt_decode(data);
});
