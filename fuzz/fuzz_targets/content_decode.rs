//! `Content::decode`; what decodes must re-encode to the same content. See `hush_fuzz::content_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::content_decode(data);
});
