//! Channels (decision 0038): one-to-many posts, end-to-end encrypted for
//! whoever holds the channel's link, stored once on the server.
//!
//! The link is `SERVER/channel#SECRET OWNER` (hex): a 32-byte secret and
//! the channel owner's public key (a key made for this channel alone, not
//! the owner's account key, so channels do not name their owner). From the
//! secret (HKDF-SHA256): the channel id the server files posts under, and
//! the key that seals the channel's [`Descriptor`] on the server. The
//! descriptor, signed by the owner key, names the channel, the admin keys
//! that may post, and the current epoch's channel key. A post
//! ([`Post`]) is signed by an admin key and sealed (AES-256-GCM) under the
//! key of its epoch, with the channel id and the epoch as associated data.
//! Rotation: the owner makes the next epoch's key, posts it sealed under the
//! current key (so subscribers reading on learn it) and files a new
//! descriptor (so new subscribers start there and cannot read before it).

use rand_core::{CryptoRng, RngCore};

use crate::codec::{DecodeError, Reader, Writer};
use crate::error::ProtoError;
use crate::identity::{AccountKey, AccountPublicKey, PUBLIC_KEY_LEN, SIGNATURE_LEN};
use crate::link_seal::{self, hex, unhex};

/// Where a channel link's secret starts: `SERVER/channel#...`.
pub const CHANNEL_PATH: &str = "/channel#";
/// Longest channel name.
pub const MAX_NAME: usize = 256;
/// Most admin keys a descriptor lists.
pub const MAX_ADMINS: usize = 32;
/// Largest sealed post or descriptor the server takes.
pub const MAX_SEALED_POST: usize = 64 * 1024;
/// Largest post body (text, or a file's pointer).
pub const MAX_BODY: usize = MAX_SEALED_POST - 512;

const DESCRIPTOR_VERSION: u8 = 1;
const POST_VERSION: u8 = 1;

/// A channel link's secret: its holder may read the channel.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSecret([u8; 32]);

impl std::fmt::Debug for ChannelSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelSecret(..)")
    }
}

impl ChannelSecret {
    /// A fresh secret.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut s = [0u8; 32];
        rng.fill_bytes(&mut s);
        Self(s)
    }

    /// The secret with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        link_seal::derive(&self.0, b"hush channel v1", label)
    }

    /// The id the server files the channel under: a one-way function of
    /// the secret, saying nothing of the name.
    pub fn channel_id(&self) -> [u8; 32] {
        self.derive(b"channel id")
    }

    /// Seals the owner's descriptor for the server to keep.
    pub fn seal_descriptor(
        &self,
        descriptor: &Descriptor,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        seal(
            &self.derive(b"descriptor"),
            &self.channel_id(),
            &descriptor.encode(),
            rng,
        )
    }

    /// Opens a descriptor and checks the owner's signature over it.
    pub fn open_descriptor(
        &self,
        owner: &AccountPublicKey,
        sealed: &[u8],
    ) -> Result<Descriptor, ProtoError> {
        let id = self.channel_id();
        let plain = open(&self.derive(b"descriptor"), &id, sealed)?;
        let d = Descriptor::decode(&plain)?;
        d.verify(&id, owner)?;
        Ok(d)
    }
}

/// A channel link: the server, the secret and the owner's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLink {
    /// The server's address.
    pub server: String,
    /// The secret.
    pub secret: ChannelSecret,
    /// The channel owner's key (it signs the descriptor).
    pub owner: AccountPublicKey,
}

impl ChannelLink {
    /// The link as a user shares it.
    pub fn to_link(&self) -> String {
        format!(
            "{}{CHANNEL_PATH}{}{}",
            self.server.trim_end_matches('/'),
            hex(self.secret.as_bytes()),
            hex(self.owner.as_bytes())
        )
    }

    /// Whether `link` is a channel link (rather than a group's invite).
    pub fn is_channel_link(link: &str) -> bool {
        link.contains(CHANNEL_PATH)
    }

    /// Parses [`ChannelLink::to_link`].
    pub fn parse(link: &str) -> Result<Self, ProtoError> {
        let bad = || ProtoError::InvalidRequest("not a channel link (SERVER/channel#...)");
        let (server, rest) = link.trim().rsplit_once(CHANNEL_PATH).ok_or_else(bad)?;
        if server.is_empty() || rest.len() != 128 {
            return Err(bad());
        }
        // `get`, not indexing: byte 64 of untrusted text may fall inside a
        // character.
        let secret = rest.get(..64).and_then(unhex::<32>).ok_or_else(bad)?;
        let owner = rest
            .get(64..)
            .and_then(unhex::<PUBLIC_KEY_LEN>)
            .ok_or_else(bad)?;
        Ok(Self {
            server: server.to_owned(),
            secret: ChannelSecret(secret),
            owner: AccountPublicKey::from_bytes(owner),
        })
    }
}

fn seal(
    key: &[u8; 32],
    aad: &[u8],
    plain: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, ProtoError> {
    link_seal::seal(
        key,
        aad,
        plain,
        MAX_SEALED_POST,
        "too large for a channel post",
        rng,
    )
}

fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, ProtoError> {
    link_seal::open(key, aad, sealed, MAX_SEALED_POST)
}

/// What the owner says the channel is, signed by the owner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The channel's name.
    pub name: String,
    /// The current epoch.
    pub epoch: u32,
    /// The current epoch's channel key.
    pub key: [u8; 32],
    /// The keys whose posts subscribers accept (the owner key among them).
    pub admins: Vec<AccountPublicKey>,
    signature: [u8; SIGNATURE_LEN],
}

impl Descriptor {
    fn signed(
        channel_id: &[u8; 32],
        name: &str,
        epoch: u32,
        key: &[u8; 32],
        admins: &[AccountPublicKey],
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(b"hush channel descriptor v1")
            .raw(channel_id)
            .bytes(name.as_bytes())
            .u32(epoch)
            .raw(key)
            .u8(admins.len() as u8);
        for a in admins {
            w.raw(a.as_bytes());
        }
        w.into_bytes()
    }

    /// A descriptor signed by `owner`.
    pub fn new(
        channel_id: &[u8; 32],
        owner: &AccountKey,
        name: &str,
        epoch: u32,
        key: [u8; 32],
        admins: Vec<AccountPublicKey>,
    ) -> Result<Self, ProtoError> {
        if name.len() > MAX_NAME || admins.len() > MAX_ADMINS {
            return Err(ProtoError::InvalidRequest(
                "channel name or admin list too long",
            ));
        }
        let signature = owner.sign(&Self::signed(channel_id, name, epoch, &key, &admins))?;
        Ok(Self {
            name: name.to_owned(),
            epoch,
            key,
            admins,
            signature,
        })
    }

    /// Checks the owner's signature, and that the owner is an admin.
    pub fn verify(
        &self,
        channel_id: &[u8; 32],
        owner: &AccountPublicKey,
    ) -> Result<(), ProtoError> {
        let m = Self::signed(channel_id, &self.name, self.epoch, &self.key, &self.admins);
        if owner.verify(&m, &self.signature) && self.admins.contains(owner) {
            Ok(())
        } else {
            Err(ProtoError::Tampered)
        }
    }

    /// Its bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(DESCRIPTOR_VERSION)
            .bytes(self.name.as_bytes())
            .u32(self.epoch)
            .raw(&self.key)
            .u8(self.admins.len() as u8);
        for a in &self.admins {
            w.raw(a.as_bytes());
        }
        w.raw(&self.signature);
        w.into_bytes()
    }

    /// Parses [`Descriptor::encode`] (without checking the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != DESCRIPTOR_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let name = r.string("channel name", MAX_NAME)?.to_owned();
        let epoch = r.u32()?;
        let key = r.array::<32>()?;
        let n = r.u8()? as usize;
        if n > MAX_ADMINS {
            return Err(DecodeError::TooLong {
                field: "admins",
                len: n,
                max: MAX_ADMINS,
            });
        }
        let admins = (0..n)
            .map(|_| {
                r.array::<PUBLIC_KEY_LEN>()
                    .map(AccountPublicKey::from_bytes)
            })
            .collect::<Result<_, _>>()?;
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        Ok(Self {
            name,
            epoch,
            key,
            admins,
            signature,
        })
    }
}

/// What a post says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostBody {
    /// A message content ([`crate::Content`]'s encoding: text, or a
    /// file's pointer), opaque here.
    Content(Vec<u8>),
    /// The key of epoch `epoch` (the one after the post's own).
    Rotate {
        /// The new epoch.
        epoch: u32,
        /// Its key.
        key: [u8; 32],
    },
}

/// A post: its body, when and by which admin key, signed by that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Post {
    /// A random id: a post the server delivers twice is shown once.
    pub id: [u8; 16],
    /// When the admin posted, ms since the Unix epoch (the admin's clock).
    pub sent_at_ms: u64,
    /// The admin key that signed it.
    pub signer: AccountPublicKey,
    /// What it says.
    pub body: PostBody,
    signature: [u8; SIGNATURE_LEN],
}

impl Post {
    fn fields(&self, w: &mut Writer) {
        w.raw(&self.id)
            .u64(self.sent_at_ms)
            .raw(self.signer.as_bytes());
        match &self.body {
            PostBody::Content(c) => {
                w.u8(1).bytes(c);
            }
            PostBody::Rotate { epoch, key } => {
                w.u8(2).u32(*epoch).raw(key);
            }
        }
    }

    fn signed(&self, channel_id: &[u8; 32], epoch: u32) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(b"hush channel post v1").raw(channel_id).u32(epoch);
        self.fields(&mut w);
        w.into_bytes()
    }

    /// A post by `signer`, sealed for epoch `epoch` of the channel.
    pub fn seal(
        channel_id: &[u8; 32],
        epoch: u32,
        key: &[u8; 32],
        signer: &AccountKey,
        body: PostBody,
        sent_at_ms: u64,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> Result<Vec<u8>, ProtoError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let mut post = Self {
            id,
            sent_at_ms,
            signer: signer.public(),
            body,
            signature: [0; SIGNATURE_LEN],
        };
        post.signature = signer.sign(&post.signed(channel_id, epoch))?;
        let mut out = Writer::new();
        out.u8(POST_VERSION).u32(epoch);
        let mut bytes = out.into_bytes();
        bytes.extend(seal(key, &aad(channel_id, epoch), &post.encode(), rng)?);
        Ok(bytes)
    }

    /// The epoch a sealed post says it is of (unauthenticated until opened).
    pub fn epoch_of(sealed: &[u8]) -> Result<u32, DecodeError> {
        let mut r = Reader::new(sealed);
        let version = r.u8()?;
        if version != POST_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        r.u32()
    }

    /// Opens a post sealed under `key` (the key of the epoch
    /// [`Post::epoch_of`] names) and checks that one of `admins` signed it.
    pub fn open(
        channel_id: &[u8; 32],
        key: &[u8; 32],
        admins: &[AccountPublicKey],
        sealed: &[u8],
    ) -> Result<Self, ProtoError> {
        let epoch = Self::epoch_of(sealed)?;
        let plain = open(
            key,
            &aad(channel_id, epoch),
            sealed.get(5..).unwrap_or_default(),
        )?;
        let post = Self::decode(&plain)?;
        if !admins.contains(&post.signer)
            || !post
                .signer
                .verify(&post.signed(channel_id, epoch), &post.signature)
        {
            return Err(ProtoError::Tampered);
        }
        Ok(post)
    }

    /// Its bytes (the plaintext inside the seal).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.fields(&mut w);
        w.raw(&self.signature);
        w.into_bytes()
    }

    /// Parses [`Post::encode`] (without checking the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let id = r.array::<16>()?;
        let sent_at_ms = r.u64()?;
        let signer = AccountPublicKey::from_bytes(r.array::<PUBLIC_KEY_LEN>()?);
        let body = match r.u8()? {
            1 => PostBody::Content(r.bytes("post", MAX_BODY)?.to_vec()),
            2 => PostBody::Rotate {
                epoch: r.u32()?,
                key: r.array::<32>()?,
            },
            _ => {
                return Err(DecodeError::Invalid {
                    field: "post kind",
                    reason: "unknown",
                });
            }
        };
        let signature = r.array::<SIGNATURE_LEN>()?;
        r.finish()?;
        Ok(Self {
            id,
            sent_at_ms,
            signer,
            body,
            signature,
        })
    }
}

fn aad(channel_id: &[u8; 32], epoch: u32) -> Vec<u8> {
    let mut a = channel_id.to_vec();
    a.extend_from_slice(&epoch.to_be_bytes());
    a
}

/// A fresh channel key.
pub fn new_key(rng: &mut (impl RngCore + CryptoRng)) -> [u8; 32] {
    let mut k = [0u8; 32];
    rng.fill_bytes(&mut k);
    k
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
