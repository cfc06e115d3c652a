//! Self-sync between an account's devices: a frame opened and verified, or
//! the signed part decoded. See `hush_fuzz::self_sync_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::self_sync_open(data);
});
