//! Test-only crate: `tests/openmls.rs` forms groups between Hush's MLS
//! configuration (mls-rs with `hush_proto::crypto::HushCryptoProvider`) and
//! OpenMLS, in the classical suite 0x0001 and the X-Wing suite 0x004D. It
//! has no library code; it exists so that OpenMLS is a dev-dependency of this
//! crate alone and never enters the graph of a shipped binary.
