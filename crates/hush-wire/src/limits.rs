//! Limits both sides enforce. A server refuses what exceeds them with
//! `too_large` or `bad_request`; a client never sends it.

/// Largest MLS message (ciphertext) in one send.
pub const MAX_MESSAGE_LEN: usize = 512 * 1024;
/// Most recipient devices of one send (a group of 1000 accounts with a few
/// devices each).
pub const MAX_RECIPIENTS: usize = 5000;
/// Largest JSON body of an ordinary request.
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;
/// Most KeyPackages in one upload.
pub const MAX_KEY_PACKAGES_PER_UPLOAD: usize = 100;
/// Largest single KeyPackage (a hybrid-suite KeyPackage is about 2.6 KiB).
pub const MAX_KEY_PACKAGE_LEN: usize = 16 * 1024;
/// Most devices per account.
pub const MAX_DEVICES_PER_ACCOUNT: usize = 16;
/// Largest encrypted profile blob.
pub const MAX_PROFILE_LEN: usize = 1024 * 1024;
/// Most envelopes acknowledged in one frame.
pub const MAX_ACKS_PER_FRAME: usize = 1024;
/// Most envelopes the server batches into one `envelopes` frame (a device
/// acknowledges a whole batch in one `ack` frame).
pub const MAX_ENVELOPES_PER_FRAME: usize = 256;
/// Largest WebSocket frame either side accepts.
pub const MAX_FRAME_LEN: usize = MAX_MESSAGE_LEN + 1024;
