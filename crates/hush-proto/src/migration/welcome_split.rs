//! A successor's Welcome in parts (decision 0031, big groups).
//!
//! A Welcome (RFC 9420 section 12.4.3.1) holds one `EncryptedGroupSecrets`
//! per joiner, found by its KeyPackage reference, and one encrypted
//! GroupInfo for all of them. A joiner reads only its own entry, so a
//! Welcome split into several, each with some of the entries and the same
//! GroupInfo, is still a Welcome for each of its joiners: this is how the
//! successor of a big conversation, whose devices all join at its first
//! epoch, reaches thousands of devices within the message limit.

use mls_rs::MlsMessage;
use mls_rs::mls_rs_codec::{self, MlsDecode, MlsEncode, MlsSize};

use super::WelcomePart;
use crate::crypto::HushSuite;
use crate::device::inspect_key_package;
use crate::error::ProtoError;

/// RFC 9420 `WireFormat` of a Welcome.
const WIRE_FORMAT_WELCOME: u16 = 3;

/// `EncryptedGroupSecrets`: the joiner's KeyPackage reference and the
/// `HPKECiphertext` of its group secrets, carried as they are.
#[derive(Clone, MlsSize, MlsEncode, MlsDecode)]
struct Secrets {
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    new_member: Vec<u8>,
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    kem_output: Vec<u8>,
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    ciphertext: Vec<u8>,
}

/// An `MLSMessage` holding a `Welcome`.
#[derive(MlsSize, MlsEncode, MlsDecode)]
struct WelcomeMessage {
    version: u16,
    wire_format: u16,
    cipher_suite: u16,
    secrets: Vec<Secrets>,
    #[mls_codec(with = "mls_rs_codec::byte_vec")]
    encrypted_group_info: Vec<u8>,
}

/// Splits `welcome` into parts for at most `max` joiners each, naming the
/// device of each entry from `key_packages` (the KeyPackages the commit
/// added). A Welcome for `max` joiners or fewer is one part, unchanged.
/// An entry for a KeyPackage not among `key_packages` is an error.
pub fn welcome_parts(
    welcome: &[u8],
    key_packages: &[Vec<u8>],
    max: usize,
) -> Result<Vec<WelcomePart>, ProtoError> {
    let message = MlsMessage::from_bytes(welcome)?;
    let suite =
        message
            .cipher_suite()
            .and_then(HushSuite::new)
            .ok_or(ProtoError::InvalidRequest(
                "a Welcome of a suite Hush does not run",
            ))?;
    let mut devices = Vec::with_capacity(key_packages.len());
    for kp in key_packages {
        let reference = MlsMessage::from_bytes(kp)?
            .key_package_reference(&suite)?
            .ok_or(ProtoError::InvalidRequest("not a KeyPackage message"))?;
        devices.push((reference.to_vec(), inspect_key_package(kp)?.certificate));
    }
    let mut reader = welcome;
    let parsed = WelcomeMessage::mls_decode(&mut reader)?;
    if !reader.is_empty() || parsed.wire_format != WIRE_FORMAT_WELCOME {
        return Err(ProtoError::InvalidRequest("not a Welcome message"));
    }
    let device_of = |s: &Secrets| {
        devices
            .iter()
            .find(|(r, _)| *r == s.new_member)
            .map(|(_, cert)| cert.clone())
            .ok_or(ProtoError::InvalidRequest(
                "a Welcome entry for a device the commit did not add",
            ))
    };
    let mut parts = Vec::new();
    for chunk in parsed.secrets.chunks(max.max(1)) {
        let part = WelcomeMessage {
            secrets: chunk.to_vec(),
            encrypted_group_info: parsed.encrypted_group_info.clone(),
            ..parsed
        };
        let bytes = if chunk.len() == parsed.secrets.len() {
            welcome.to_vec()
        } else {
            part.mls_encode_to_vec()?
        };
        parts.push(WelcomePart {
            welcome: bytes,
            devices: chunk.iter().map(device_of).collect::<Result<_, _>>()?,
        });
    }
    Ok(parts)
}
