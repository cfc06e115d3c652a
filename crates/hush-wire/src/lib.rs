//! `hush-wire` holds the types that cross the wire between a Hush client and a
//! Hush server: JSON bodies of the HTTP API, the frames of the per-device
//! WebSocket, the error body every refusal carries, and the limits both sides
//! enforce. Pure data and codecs; no I/O.
//!
//! Binary fields (keys, ciphertext) travel as standard base64 inside JSON, via
//! [`Bytes`].
//!
//! ```
//! use hush_wire::{ApiError, ErrorCode};
//! let err = ApiError::new(ErrorCode::NotFound, "no such account");
//! let json = serde_json::to_string(&err).unwrap();
//! assert_eq!(json, r#"{"code":"not_found","message":"no such account"}"#);
//! ```

#![forbid(unsafe_code)]

pub mod api;
pub mod error;
pub mod kt;
pub mod limits;
pub mod ws;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use error::{ApiError, ErrorCode};

/// Binary data carried as base64 text in JSON.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The raw bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Base64 text.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Parses base64 text.
    pub fn from_base64(s: &str) -> Result<Self, base64::DecodeError> {
        STANDARD.decode(s).map(Bytes)
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Bytes::from_base64(&s).map_err(serde::de::Error::custom)
    }
}

/// One device of one account: where a message is addressed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceAddress {
    /// The account's username.
    pub username: String,
    /// The device's id within the account.
    pub device_id: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_base64_in_json() {
        let b = Bytes(vec![0, 1, 2, 255]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"AAEC/w==\"");
        assert_eq!(serde_json::from_str::<Bytes>(&json).unwrap(), b);
        assert!(serde_json::from_str::<Bytes>("\"not base64!\"").is_err());
    }
}
