//! `Conversation::add_devices` with arbitrary bytes as the KeyPackage. See `hush_fuzz::key_package_add`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::key_package_add(data);
});
