//! A member opening a commit that travelled out of band (a pointer and its
//! blob). See `hush_fuzz::commit_blob_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::commit_blob_open(data);
});
