//! `StateKey::from_bytes`. See `hush_fuzz::state_key`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::state_key(data);
});
