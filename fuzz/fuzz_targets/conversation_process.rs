//! `Conversation::process` on bob's side of a fixed two-party conversation. See `hush_fuzz::conversation_process`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::conversation_process(data);
});
