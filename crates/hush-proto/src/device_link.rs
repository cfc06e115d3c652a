//! Linking a new device to an account (decision 0023).
//!
//! The new device makes its MLS signature key and a one-time secret and
//! shows both as a [`LinkCode`]. The code travels from screen to screen (typed,
//! pasted or scanned), never through the server. Everything the two devices
//! then say to each other goes through the server as [`seal_frame`]d link
//! frames, under keys derived from the secret and the new device's key
//! ([`LinkKeys`]): a server that never saw the code can neither read them nor
//! make one that opens, and the account key only ever certifies the key the
//! code carries.
//!
//! Code: `version 1 | [32] device signature key | [16] secret | [4] check`,
//! in lowercase RFC 4648 base32 without padding, in groups of five letters
//! joined by `-` (case, spaces and dashes are ignored when read). The check
//! is the start of SHA-256 of what precedes it, so a mistyped code is
//! refused before anything is certified.
//!
//! Frame: `[8] "HUSHLINK" | u8 version 1 | u8 kind | u64 seq | [12] nonce |
//! AES-256-GCM ciphertext`, the header up to the nonce being the associated
//! data. Each direction has its own key, so a frame cannot be reflected.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Writer};
use crate::identity::{AccountKey, DeviceCertificate, IdentityError};

const CODE_VERSION: u8 = 1;
/// Length of the one-time secret in a code.
pub const SECRET_LEN: usize = 16;
const CHECK_LEN: usize = 4;
const CODE_LEN: usize = 1 + 32 + SECRET_LEN + CHECK_LEN;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The first bytes of every link frame.
pub const FRAME_MAGIC: &[u8; 8] = b"HUSHLINK";
const FRAME_VERSION: u8 = 1;
const HEADER_LEN: usize = 8 + 1 + 1 + 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Largest certificate list a welcome carries.
const MAX_ROSTER: usize = 64;
/// Most KeyPackages asked for and sent in one link (a hybrid KeyPackage is
/// about 2.6 KiB; this many fit in one message). Conversations beyond it get
/// the new device through KeyPackages claimed from the server.
pub const MAX_KEY_PACKAGES: usize = 150;
const MAX_KEY_PACKAGE_LEN: usize = 16 * 1024;

fn count(r: &mut Reader<'_>, field: &'static str) -> Result<usize, DecodeError> {
    let n = usize::from(r.u16()?);
    if n > MAX_KEY_PACKAGES {
        return Err(DecodeError::TooLong {
            field,
            len: n,
            max: MAX_KEY_PACKAGES,
        });
    }
    Ok(n)
}

/// Why a link code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkCodeError {
    /// A character outside the code's alphabet.
    #[error("a link code has only the letters a-z and digits 2-7 (found {0:?})")]
    BadCharacter(char),
    /// Too short or too long.
    #[error("a link code is {expected} letters; this one has {found}")]
    Length {
        /// Letters expected.
        expected: usize,
        /// Letters found.
        found: usize,
    },
    /// The check does not match: a letter is wrong.
    #[error("the link code is mistyped (its check does not match); copy it again")]
    Check,
    /// Made by a newer hush.
    #[error("link code version {0} is not supported by this hush")]
    Version(u8),
}

/// What the new device shows: its key and a one-time secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The new device's Ed25519 MLS signature key: the only key the account
    /// will certify for it.
    pub device_key: [u8; 32],
    /// The one-time secret the link keys derive from.
    pub secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl std::fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkCode")
            .field("device_key", &self.device_key)
            .finish_non_exhaustive()
    }
}

fn check_of(bytes: &[u8]) -> [u8; CHECK_LEN] {
    let d = digest(&SHA256, bytes);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&d.as_ref()[..CHECK_LEN]);
    out
}

fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn unbase32(letters: &[u8]) -> Result<Vec<u8>, LinkCodeError> {
    let mut out = Vec::with_capacity(letters.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in letters {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or(LinkCodeError::BadCharacter(char::from(c)))?;
        acc = ((acc << 5) | v as u32) & 0xFFFF;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xFF) as u8);
        }
    }
    Ok(out)
}

impl LinkCode {
    /// A fresh code for `device_key`.
    pub fn generate(device_key: [u8; 32], rng: &mut (impl RngCore + CryptoRng)) -> Self {
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        rng.fill_bytes(&mut *secret);
        Self { device_key, secret }
    }

    /// The code as shown: base32 letters in groups of five.
    pub fn encode(&self) -> String {
        let mut raw = Zeroizing::new(Vec::with_capacity(CODE_LEN));
        raw.push(CODE_VERSION);
        raw.extend_from_slice(&self.device_key);
        raw.extend_from_slice(&*self.secret);
        let check = check_of(&raw);
        raw.extend_from_slice(&check);
        let letters = Zeroizing::new(base32(&raw));
        let groups: Vec<&str> = letters
            .as_bytes()
            .chunks(5)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        groups.join("-")
    }

    /// Reads a code as typed or pasted.
    pub fn parse(text: &str) -> Result<Self, LinkCodeError> {
        let letters: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.bytes()
                .filter(|b| !matches!(b, b'-' | b' ' | b'\t' | b'\n' | b'\r'))
                .map(|b| b.to_ascii_lowercase())
                .collect(),
        );
        let expected = (CODE_LEN * 8).div_ceil(5);
        if let Some(&c) = letters.iter().find(|c| !ALPHABET.contains(c)) {
            return Err(LinkCodeError::BadCharacter(char::from(c)));
        }
        if letters.len() != expected {
            return Err(LinkCodeError::Length {
                expected,
                found: letters.len(),
            });
        }
        let raw = Zeroizing::new(unbase32(&letters)?);
        if raw.len() != CODE_LEN {
            return Err(LinkCodeError::Length {
                expected,
                found: letters.len(),
            });
        }
        let (body, check) = raw.split_at(CODE_LEN - CHECK_LEN);
        if check_of(body) != check {
            return Err(LinkCodeError::Check);
        }
        if body[0] != CODE_VERSION {
            return Err(LinkCodeError::Version(body[0]));
        }
        let mut device_key = [0u8; 32];
        device_key.copy_from_slice(&body[1..33]);
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        secret.copy_from_slice(&body[33..33 + SECRET_LEN]);
        Ok(Self { device_key, secret })
    }

    /// The keys both devices derive from the code.
    pub fn keys(&self) -> LinkKeys {
        let prk = Salt::new(HKDF_SHA256, b"hush link v1").extract(&*self.secret);
        let expand = |label: &[u8]| {
            let mut out = Zeroizing::new([0u8; 32]);
            let info = [label, &self.device_key[..]];
            // HKDF_SHA256 asks for 32 bytes, always within HKDF's limit.
            if let Ok(okm) = prk.expand(&info, HKDF_SHA256) {
                let _ = okm.fill(&mut *out);
            }
            out
        };
        LinkKeys {
            to_new: expand(b"to new device"),
            to_existing: expand(b"to existing device"),
            token: expand(b"first server token"),
        }
    }
}

/// Keys derived from a code (HKDF-SHA256, salt `hush link v1`, input the
/// secret, info a label and the new device's key).
#[derive(Clone)]
pub struct LinkKeys {
    /// Seals frames from the existing device to the new one.
    pub to_new: Zeroizing<[u8; 32]>,
    /// Seals frames from the new device to the existing one.
    pub to_existing: Zeroizing<[u8; 32]>,
    /// The new device's first server token (it rotates it once linked).
    pub token: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKeys(<redacted>)")
    }
}

impl LinkKeys {
    /// The first server token as the new device presents it (hex).
    pub fn token_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.token.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// What a link frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Existing to new: the account ([`LinkWelcome`]).
    Welcome,
    /// New to existing: linked and ready to be added ([`LinkReady`]).
    Ready,
    /// Existing to new: where the history archive is ([`LinkHistory`],
    /// decision 0026).
    History,
    /// Room for later kinds: refused by this build.
    Other(u8),
}

impl FrameKind {
    fn to_u8(self) -> u8 {
        match self {
            FrameKind::Welcome => 1,
            FrameKind::Ready => 2,
            FrameKind::History => 3,
            FrameKind::Other(k) => k,
        }
    }

    fn from_u8(k: u8) -> Self {
        match k {
            1 => FrameKind::Welcome,
            2 => FrameKind::Ready,
            3 => FrameKind::History,
            k => FrameKind::Other(k),
        }
    }
}

/// Whether `payload` is a link frame (rather than an MLS message).
pub fn is_link_frame(payload: &[u8]) -> bool {
    payload.starts_with(FRAME_MAGIC)
}

/// Seals `plaintext` as frame number `seq` of `kind` under `key`.
pub fn seal_frame(
    key: &[u8; 32],
    kind: FrameKind,
    seq: u64,
    plaintext: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(FRAME_MAGIC)
        .u8(FRAME_VERSION)
        .u8(kind.to_u8())
        .u64(seq);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    w.raw(&nonce);
    let header = w.into_bytes();
    let mut body = plaintext.to_vec();
    // A 32-byte key is always valid for AES-256-GCM and sealing only fails
    // on over-long inputs, which a frame never is.
    if let Ok(k) = UnboundKey::new(&AES_256_GCM, key) {
        let _ = LessSafeKey::new(k).seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&header[..HEADER_LEN]),
            &mut body,
        );
    }
    let mut out = header;
    out.extend_from_slice(&body);
    out
}

/// An opened link frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedFrame {
    /// What it carries.
    pub kind: FrameKind,
    /// Its number in the sender's sequence.
    pub seq: u64,
    /// The plaintext.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// Opens a frame sealed under `key`; any change to it on the way fails.
pub fn open_frame(key: &[u8; 32], bytes: &[u8]) -> Result<OpenedFrame, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.take(FRAME_MAGIC.len())? != FRAME_MAGIC {
        return Err(DecodeError::Invalid {
            field: "link frame",
            reason: "not a link frame",
        });
    }
    let version = r.u8()?;
    if version != FRAME_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let kind = FrameKind::from_u8(r.u8()?);
    let seq = r.u64()?;
    let nonce = r.array::<NONCE_LEN>()?;
    if r.remaining() < TAG_LEN {
        return Err(DecodeError::Incomplete {
            needed: TAG_LEN - r.remaining(),
        });
    }
    let mut body = Zeroizing::new(r.take(r.remaining())?.to_vec());
    let tampered = DecodeError::Invalid {
        field: "link frame",
        reason: "it does not open with this link's key (altered, or for another link)",
    };
    let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| tampered.clone())?;
    let len = LessSafeKey::new(key)
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&bytes[..HEADER_LEN]),
            &mut body,
        )
        .map_err(|_| tampered)?
        .len();
    body.truncate(len);
    Ok(OpenedFrame {
        kind,
        seq,
        plaintext: body,
    })
}

/// A device of the account as a welcome lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// Its certificate.
    pub certificate: DeviceCertificate,
    /// Removed from the account.
    pub removed: bool,
}

/// What the existing device hands the new one: the account.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkWelcome {
    /// The account key's secret seed (every device of an account holds it,
    /// so none is special).
    pub account_seed: Zeroizing<[u8; 32]>,
    /// The new device's certificate.
    pub certificate: DeviceCertificate,
    /// The device that approved the link (where [`LinkReady`] goes).
    pub approver: u32,
    /// The key-transparency signing key the approver pinned.
    pub kt_signing_key: [u8; 32],
    /// The key-transparency VRF key the approver pinned.
    pub kt_vrf_key: Vec<u8>,
    /// Every device the approver knows the account to have had.
    pub roster: Vec<RosterEntry>,
    /// The MLS suite of each conversation the approver will add the new
    /// device to: the new device answers with one KeyPackage for each (so
    /// the approver claims none from the server).
    pub wanted: Vec<u16>,
}

impl std::fmt::Debug for LinkWelcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkWelcome")
            .field("certificate", &self.certificate.device_id())
            .field("approver", &self.approver)
            .finish_non_exhaustive()
    }
}

const MAX_CERT: usize = DeviceCertificate::MAX_ENCODED_LEN;

fn cert(r: &mut Reader<'_>) -> Result<DeviceCertificate, DecodeError> {
    DeviceCertificate::decode(r.bytes("certificate", MAX_CERT)?).map_err(|_| DecodeError::Invalid {
        field: "certificate",
        reason: "not a device certificate",
    })
}

impl LinkWelcome {
    /// `u8 1 | [32] seed | bytes cert | u32 approver | [32] kt key |
    /// bytes vrf key | u16 n | n x (bytes cert | bool removed) |
    /// u16 m | m x u16 suite`.
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(1)
            .raw(&*self.account_seed)
            .bytes(&self.certificate.encode())
            .u32(self.approver)
            .raw(&self.kt_signing_key)
            .bytes(&self.kt_vrf_key);
        let roster = &self.roster[..self.roster.len().min(MAX_ROSTER)];
        w.u16(roster.len() as u16);
        for e in roster {
            w.bytes(&e.certificate.encode()).bool(e.removed);
        }
        let wanted = &self.wanted[..self.wanted.len().min(MAX_KEY_PACKAGES)];
        w.u16(wanted.len() as u16);
        for suite in wanted {
            w.u16(*suite);
        }
        Zeroizing::new(w.into_bytes())
    }

    /// Decodes a welcome (checked with [`LinkWelcome::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != 1 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let account_seed = Zeroizing::new(r.array::<32>()?);
        let certificate = cert(&mut r)?;
        let approver = r.u32()?;
        let kt_signing_key = r.array::<32>()?;
        let kt_vrf_key = r.bytes("vrf key", 256)?.to_vec();
        let n = usize::from(r.u16()?);
        if n > MAX_ROSTER {
            return Err(DecodeError::TooLong {
                field: "roster",
                len: n,
                max: MAX_ROSTER,
            });
        }
        let mut roster = Vec::with_capacity(n);
        for _ in 0..n {
            let certificate = cert(&mut r)?;
            let removed = r.bool("removed")?;
            roster.push(RosterEntry {
                certificate,
                removed,
            });
        }
        let wanted = count(&mut r, "wanted key packages")?;
        let wanted = (0..wanted).map(|_| r.u16()).collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Self {
            account_seed,
            certificate,
            approver,
            kt_signing_key,
            kt_vrf_key,
            roster,
            wanted,
        })
    }

    /// Checks that the welcome makes this device (`device_key`) a device of
    /// the account whose key it hands over, and returns that key. Roster
    /// entries not certified by the account key are dropped.
    pub fn verify(&mut self, device_key: &[u8; 32]) -> Result<AccountKey, IdentityError> {
        let account = AccountKey::from_seed(*self.account_seed)?;
        let cert = &self.certificate;
        cert.verify()?;
        if cert.account_key() != account.public() || cert.signature_key() != device_key {
            return Err(IdentityError::BadCertificateSignature);
        }
        let user = cert.username().clone();
        self.roster.retain(|e| {
            e.certificate.verify().is_ok()
                && e.certificate.account_key() == account.public()
                && e.certificate.username() == &user
        });
        Ok(account)
    }
}

/// What the new device tells the approver once it is linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReady {
    /// The name the user gave the new device.
    pub name: String,
    /// One KeyPackage (RFC 9420 `MLSMessage`) per suite the welcome asked
    /// for, in its order.
    pub key_packages: Vec<Vec<u8>>,
}

/// Longest device name.
pub const MAX_DEVICE_NAME: usize = 64;

impl LinkReady {
    /// `u8 1 | string name | u16 n | n x bytes key package`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1).bytes(self.name.as_bytes());
        let kps = &self.key_packages[..self.key_packages.len().min(MAX_KEY_PACKAGES)];
        w.u16(kps.len() as u16);
        for kp in kps {
            w.bytes(kp);
        }
        w.into_bytes()
    }

    /// Decodes it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != 1 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let name = r.string("device name", MAX_DEVICE_NAME)?.to_owned();
        let n = count(&mut r, "key packages")?;
        let key_packages = (0..n)
            .map(|_| {
                r.bytes("key package", MAX_KEY_PACKAGE_LEN)
                    .map(<[u8]>::to_vec)
            })
            .collect::<Result<_, _>>()?;
        r.finish()?;
        Ok(Self { name, key_packages })
    }
}

/// The history a linked device receives (decision 0026): where the sealed
/// archive is on the server and its key, or nothing (`--history none`).
#[derive(Clone, PartialEq, Eq)]
pub struct LinkHistory {
    /// The attachment blob holding the sealed archive; `None` when no
    /// history is sent.
    pub blob: Option<HistoryBlob>,
}

/// A sealed archive on the server.
#[derive(Clone, PartialEq, Eq)]
pub struct HistoryBlob {
    /// Its attachment id.
    pub blob_id: String,
    /// The key it is sealed under (`archive::Purpose::Link`).
    pub key: Zeroizing<[u8; 32]>,
    /// Its length in bytes.
    pub size: u64,
    /// How many messages it holds (for progress).
    pub messages: u64,
}

impl std::fmt::Debug for LinkHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkHistory")
            .field("blob", &self.blob)
            .finish()
    }
}

impl std::fmt::Debug for HistoryBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryBlob")
            .field("blob_id", &self.blob_id)
            .field("size", &self.size)
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

const MAX_BLOB_ID: usize = 128;

impl LinkHistory {
    /// `u8 1 | bool present [| string blob id | key 32 | u64 size | u64 messages]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(1);
        match &self.blob {
            None => w.bool(false),
            Some(b) => w
                .bool(true)
                .bytes(b.blob_id.as_bytes())
                .raw(&b.key[..])
                .u64(b.size)
                .u64(b.messages),
        };
        w.into_bytes()
    }

    /// Decodes it.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != 1 {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let blob = if r.bool("history present")? {
            Some(HistoryBlob {
                blob_id: r.string("blob id", MAX_BLOB_ID)?.to_owned(),
                key: Zeroizing::new(r.array::<32>()?),
                size: r.u64()?,
                messages: r.u64()?,
            })
        } else {
            None
        };
        r.finish()?;
        Ok(Self { blob })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::identity::{DeviceId, DeviceSigningKey, Username};
    use rand_core::SeedableRng;

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    #[test]
    fn a_code_reads_back_however_it_is_typed() {
        let code = LinkCode::generate([9; 32], &mut rng());
        let text = code.encode();
        assert_eq!(LinkCode::parse(&text).unwrap(), code);
        let shouted = text.to_uppercase().replace('-', " ");
        assert_eq!(LinkCode::parse(&shouted).unwrap(), code);
    }

    #[test]
    fn a_mistyped_code_is_refused() {
        let text = LinkCode::generate([9; 32], &mut rng()).encode();
        let mut letters: Vec<char> = text.chars().collect();
        letters[10] = if letters[10] == 'a' { 'b' } else { 'a' };
        let typo: String = letters.into_iter().collect();
        assert_eq!(LinkCode::parse(&typo), Err(LinkCodeError::Check));
        assert!(matches!(
            LinkCode::parse(&text[..20]),
            Err(LinkCodeError::Length { .. })
        ));
        assert!(matches!(
            LinkCode::parse("hello world!"),
            Err(LinkCodeError::BadCharacter('!'))
        ));
    }

    #[test]
    fn a_frame_opens_only_with_its_direction_key_and_unaltered() {
        let keys = LinkCode::generate([1; 32], &mut rng()).keys();
        let frame = seal_frame(&keys.to_new, FrameKind::Ready, 3, b"hello", &mut rng());
        let opened = open_frame(&keys.to_new, &frame).unwrap();
        assert_eq!(opened.kind, FrameKind::Ready);
        assert_eq!(opened.seq, 3);
        assert_eq!(&opened.plaintext[..], b"hello");
        assert!(open_frame(&keys.to_existing, &frame).is_err());
        for i in 0..frame.len() {
            let mut bad = frame.clone();
            bad[i] ^= 1;
            assert!(open_frame(&keys.to_new, &bad).is_err(), "byte {i}");
        }
        // Another code (another secret) derives other keys.
        let other = LinkCode::generate([1; 32], &mut rand_chacha::ChaCha20Rng::seed_from_u64(8));
        assert!(open_frame(&other.keys().to_new, &frame).is_err());
    }

    #[test]
    fn a_welcome_must_certify_the_code_key_under_the_seed() {
        let mut rng = rng();
        let account = AccountKey::generate(&mut rng).unwrap();
        let device = DeviceSigningKey::generate(&mut rng).unwrap();
        let user = Username::new("alice").unwrap();
        let cert =
            DeviceCertificate::issue_for_key(&account, &user, DeviceId(2), device.public(), 1)
                .unwrap();
        let welcome = LinkWelcome {
            account_seed: account.to_seed(),
            certificate: cert,
            approver: 1,
            kt_signing_key: [3; 32],
            kt_vrf_key: vec![4; 32],
            roster: Vec::new(),
            wanted: vec![1, 65100],
        };
        let mut back = LinkWelcome::decode(&welcome.encode()).unwrap();
        assert_eq!(back, welcome);
        assert_eq!(
            back.verify(&device.public()).unwrap().public(),
            account.public()
        );
        let mut wrong = welcome.clone();
        assert!(wrong.verify(&[0; 32]).is_err());
        let stranger = AccountKey::generate(&mut rng).unwrap();
        let mut swapped = welcome;
        swapped.account_seed = stranger.to_seed();
        assert!(swapped.verify(&device.public()).is_err());
    }
}
