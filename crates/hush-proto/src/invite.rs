//! Invite links (decision 0033).
//!
//! A link is the server's address and a 32-byte secret after `#` (a URL
//! fragment, never sent to any server). Everything else derives from the
//! secret: the link id the server files the link under (a hash, so the id
//! says nothing of the secret), the key that seals the link's preview (the
//! group's name and size, all a link holder learns before joining) and the
//! key that seals join requests. The server stores only sealed bytes and
//! counters; the group's admins list the link (its secret, management token,
//! expiry, use limit and uses) in the group context ([`GroupLinks`],
//! extension [`LINKS_EXTENSION`]), so only admins change it (decision 0032)
//! and members' devices judge each request against it themselves.

use mls_rs::{Extension, ExtensionList};
use mls_rs_core::extension::ExtensionType;
use rand_core::{CryptoRng, RngCore};

use crate::codec::{DecodeError, Reader, Writer};
use crate::error::ProtoError;
use crate::identity::{AccountPublicKey, DeviceCertificate, DeviceSigningKey, SIGNATURE_LEN};
use crate::link_seal;

/// The group context extension that lists a group's invite links.
pub const LINKS_EXTENSION: ExtensionType = ExtensionType::new(0xF0A8);
/// Most links a group lists at once.
pub const MAX_LINKS: usize = 16;
/// Longest group name a preview carries.
pub const MAX_PREVIEW_NAME: usize = 256;
/// Largest sealed join request or preview the server takes.
pub const MAX_SEALED_LEN: usize = 4096;
/// The secret's length.
pub const SECRET_LEN: usize = 32;
/// Where a link's secret starts: `SERVER/join#SECRET` (hex).
pub const LINK_PATH: &str = "/join#";

const LINKS_VERSION: u8 = 1;
const PREVIEW_VERSION: u8 = 1;
const REQUEST_VERSION: u8 = 1;

/// A link's secret: whoever holds it may read the preview and ask to join.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteSecret([u8; SECRET_LEN]);

impl std::fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

impl InviteSecret {
    /// A fresh secret.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut s = [0u8; SECRET_LEN];
        rng.fill_bytes(&mut s);
        Self(s)
    }

    /// The secret with these bytes.
    pub fn from_bytes(bytes: [u8; SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; SECRET_LEN] {
        &self.0
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        link_seal::derive(&self.0, b"hush invite link v1", label)
    }

    /// The id the server files the link under: a one-way function of the
    /// secret.
    pub fn link_id(&self) -> [u8; 32] {
        self.derive(b"link id")
    }

    /// The link as a user shares it: `server` + `/join#` + the secret in hex.
    pub fn to_link(&self, server: &str) -> String {
        format!(
            "{}{LINK_PATH}{}",
            server.trim_end_matches('/'),
            link_seal::hex(&self.0)
        )
    }

    /// Parses [`InviteSecret::to_link`]: the server's address and the secret.
    pub fn parse_link(link: &str) -> Result<(String, Self), ProtoError> {
        let bad = || ProtoError::InvalidRequest("not an invite link (SERVER/join#SECRET)");
        let (server, hex) = link.trim().rsplit_once(LINK_PATH).ok_or_else(bad)?;
        if server.is_empty() {
            return Err(bad());
        }
        let s = link_seal::unhex::<SECRET_LEN>(hex).ok_or_else(bad)?;
        Ok((server.to_owned(), Self(s)))
    }

    fn seal(
        &self,
        label: &[u8],
        plain: &[u8],
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        let key = self.derive(label);
        let too_large = "too large for an invite link";
        link_seal::seal(&key, &self.link_id(), plain, MAX_SEALED_LEN, too_large, rng)
    }

    fn open(&self, label: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ProtoError> {
        link_seal::open(&self.derive(label), &self.link_id(), sealed, MAX_SEALED_LEN)
    }

    /// Seals a preview for the server to keep.
    pub fn seal_preview(
        &self,
        preview: &LinkPreview,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        self.seal(b"preview", &preview.encode(), rng)
    }

    /// Opens what [`InviteSecret::seal_preview`] sealed.
    pub fn open_preview(&self, sealed: &[u8]) -> Result<LinkPreview, ProtoError> {
        Ok(LinkPreview::decode(&self.open(b"preview", sealed)?)?)
    }

    /// Seals a join request for the link's mailbox.
    pub fn seal_request(
        &self,
        request: &JoinRequest,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        self.seal(b"join request", &request.encode(), rng)
    }

    /// Opens a join request and checks its signature: the device its
    /// certificate names asked to join through this link.
    pub fn open_request(&self, sealed: &[u8]) -> Result<JoinRequest, ProtoError> {
        let request = JoinRequest::decode(&self.open(b"join request", sealed)?)?;
        request.verify(&self.link_id())?;
        Ok(request)
    }
}

/// What a link shows before joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkPreview {
    /// The group's name.
    pub name: String,
    /// How many accounts are in it.
    pub size: u32,
    /// Whether an admin approves each request.
    pub approve: bool,
}

impl LinkPreview {
    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(PREVIEW_VERSION)
            .bytes(self.name.as_bytes())
            .u32(self.size)
            .bool(self.approve);
        w.into_bytes()
    }

    /// Parses [`LinkPreview::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != PREVIEW_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let name = r.string("group name", MAX_PREVIEW_NAME)?.to_owned();
        let size = r.u32()?;
        let approve = r.bool("approve")?;
        r.finish()?;
        Ok(Self {
            name,
            size,
            approve,
        })
    }
}

/// A device's request to join through a link: its certificate and its
/// signature over the link id, so nobody can file a request in another
/// account's name (a KeyPackage, which anyone can claim, would not do).
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The requesting device.
    pub certificate: DeviceCertificate,
    signature: [u8; SIGNATURE_LEN],
}

impl JoinRequest {
    fn signed(link_id: &[u8; 32], certificate: &DeviceCertificate) -> Vec<u8> {
        let mut m = b"hush join request v1".to_vec();
        m.extend_from_slice(link_id);
        m.extend_from_slice(&certificate.encode());
        m
    }

    /// A request by the device holding `key` to join through `link_id`.
    pub fn new(
        link_id: &[u8; 32],
        certificate: DeviceCertificate,
        key: &DeviceSigningKey,
    ) -> Result<Self, ProtoError> {
        let signature = key.sign(&Self::signed(link_id, &certificate))?;
        Ok(Self {
            certificate,
            signature,
        })
    }

    /// Checks the certificate and the signature over `link_id`.
    pub fn verify(&self, link_id: &[u8; 32]) -> Result<(), ProtoError> {
        self.certificate.verify()?;
        let key = AccountPublicKey::from_bytes(*self.certificate.signature_key());
        if key.verify(&Self::signed(link_id, &self.certificate), &self.signature) {
            Ok(())
        } else {
            Err(ProtoError::Tampered)
        }
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(REQUEST_VERSION)
            .bytes(&self.certificate.encode())
            .raw(&self.signature);
        w.into_bytes()
    }

    /// Parses [`JoinRequest::encode`] (without checking the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != REQUEST_VERSION {
            return Err(DecodeError::UnsupportedVersion(version).into());
        }
        let certificate = DeviceCertificate::decode(r.bytes("certificate", 1024)?)?;
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        Ok(Self {
            certificate,
            signature,
        })
    }
}

/// One link as the group context lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// The secret (the link itself).
    pub secret: [u8; SECRET_LEN],
    /// The token that lets admins' devices revoke the link and read its
    /// requests on the server.
    pub manage_token: [u8; 32],
    /// When it stops working, ms since the Unix epoch; 0 for never.
    pub expires_at_ms: u64,
    /// How many joins it allows; 0 for no limit.
    pub max_uses: u32,
    /// How many joins it admitted so far.
    pub uses: u32,
    /// Whether an admin approves each request.
    pub approve: bool,
}

impl InviteLink {
    /// The link's id on the server.
    pub fn link_id(&self) -> [u8; 32] {
        InviteSecret(self.secret).link_id()
    }

    /// Whether it admits a join at `now_ms`: not expired, not used up.
    pub fn admits(&self, now_ms: u64) -> bool {
        (self.expires_at_ms == 0 || now_ms < self.expires_at_ms)
            && (self.max_uses == 0 || self.uses < self.max_uses)
    }
}

/// The links a group lists (extension [`LINKS_EXTENSION`]); revoking a link
/// removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupLinks {
    /// The active links.
    pub links: Vec<InviteLink>,
}

impl GroupLinks {
    /// The extension's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(LINKS_VERSION).u16(self.links.len() as u16);
        for l in &self.links {
            w.raw(&l.secret)
                .raw(&l.manage_token)
                .u64(l.expires_at_ms)
                .u32(l.max_uses)
                .u32(l.uses)
                .bool(l.approve);
        }
        w.into_bytes()
    }

    /// Parses [`GroupLinks::encode`]: at most [`MAX_LINKS`] distinct links,
    /// nothing after.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != LINKS_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let count = usize::from(r.u16()?);
        if count > MAX_LINKS {
            return Err(DecodeError::Invalid {
                field: "group links",
                reason: "too many links",
            });
        }
        let mut links: Vec<InviteLink> = Vec::with_capacity(count);
        for _ in 0..count {
            let link = InviteLink {
                secret: r.array()?,
                manage_token: r.array()?,
                expires_at_ms: r.u64()?,
                max_uses: r.u32()?,
                uses: r.u32()?,
                approve: r.bool("approve")?,
            };
            if links.iter().any(|l| l.secret == link.secret) {
                return Err(DecodeError::Invalid {
                    field: "group links",
                    reason: "duplicate link",
                });
            }
            links.push(link);
        }
        r.finish()?;
        Ok(Self { links })
    }

    /// The link with this id.
    pub fn find(&self, link_id: &[u8; 32]) -> Option<&InviteLink> {
        self.links.iter().find(|l| &l.link_id() == link_id)
    }

    pub(crate) fn to_extension(&self) -> Extension {
        Extension::new(LINKS_EXTENSION, self.encode())
    }

    /// The links in a group context (none listed: empty).
    pub(crate) fn from_extensions(list: &ExtensionList) -> Result<Self, DecodeError> {
        list.get(LINKS_EXTENSION)
            .map(|ext| Self::decode(&ext.extension_data))
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> rand_chacha::ChaCha20Rng {
        use rand_core::SeedableRng;
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn a_link_round_trips_and_its_blobs_open_only_with_its_secret() {
        let secret = InviteSecret::generate(&mut rng());
        let link = secret.to_link("https://hush.example/");
        let (server, parsed) = InviteSecret::parse_link(&link).unwrap();
        assert_eq!(server, "https://hush.example");
        assert_eq!(parsed, secret);
        assert!(InviteSecret::parse_link("https://hush.example/join#zz").is_err());
        let preview = LinkPreview {
            name: "club".into(),
            size: 3,
            approve: true,
        };
        let sealed = secret.seal_preview(&preview, &mut rng()).unwrap();
        assert_eq!(secret.open_preview(&sealed).unwrap(), preview);
        let other = InviteSecret::from_bytes([9; 32]);
        assert!(other.open_preview(&sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(secret.open_preview(&flipped).is_err());
        assert_ne!(secret.link_id(), other.link_id());
    }

    #[test]
    fn group_links_round_trip_and_bad_ones_are_refused() {
        let link = InviteLink {
            secret: [1; 32],
            manage_token: [2; 32],
            expires_at_ms: 10,
            max_uses: 2,
            uses: 1,
            approve: false,
        };
        let links = GroupLinks {
            links: vec![link.clone()],
        };
        assert_eq!(GroupLinks::decode(&links.encode()).unwrap(), links);
        assert!(link.admits(9) && !link.admits(10));
        let twice = GroupLinks {
            links: vec![link.clone(), link],
        };
        assert!(GroupLinks::decode(&twice.encode()).is_err());
        for cut in 0..links.encode().len() {
            assert!(GroupLinks::decode(&links.encode()[..cut]).is_err());
        }
    }
}
