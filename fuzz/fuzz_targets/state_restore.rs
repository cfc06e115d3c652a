//! `Device::restore` on arbitrary state entries. See `hush_fuzz::state_restore`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::state_restore(data);
});
