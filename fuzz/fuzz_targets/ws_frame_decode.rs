//! hush-wire's WebSocket frames, both ways. See `hush_fuzz::ws_frame_decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::ws_frame_decode(data);
});
