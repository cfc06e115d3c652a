//! Invite-link previews, join requests and links. See `hush_fuzz::invite_open`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hush_fuzz::invite_open(data);
});
