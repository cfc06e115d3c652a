//! A group's admins and settings. See `hush_fuzz::group_policy_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::group_policy_decode(data);
});
