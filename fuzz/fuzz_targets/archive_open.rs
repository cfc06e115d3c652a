//! Account archives: sealed backups and link histories (decision 0026).
//! See `hush_fuzz::archive_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::archive_open(data);
});
