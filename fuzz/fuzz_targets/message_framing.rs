//! `read_framing`, what the server reads of a relayed message. See `hush_fuzz::message_framing`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::message_framing(data);
});
