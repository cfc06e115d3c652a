//! `DeviceCertificate::decode`, then `verify`. See `hush_fuzz::certificate_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::certificate_decode(data);
});
