//! Batched directory answers as a client checks them. See
//! `hush_fuzz::kt_batch_check`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::kt_batch_check(data);
});
