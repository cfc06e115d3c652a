//! X-Wing public keys and ciphertexts from untrusted messages (decision 0031).
//! See `hush_fuzz::xwing_kem`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::xwing_kem(data);
});
