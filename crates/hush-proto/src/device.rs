//! One device of one account: its MLS clients, KeyPackages and conversations.

use std::time::Duration;

use mls_rs::client_builder::{
    BaseConfig, WithCryptoProvider, WithGroupStateStorage, WithIdentityProvider,
    WithKeyPackageRepo, WithMlsRules,
};
use mls_rs::extension::recommended::LastResortKeyPackageExt;
use mls_rs::group::ExportedTree;
use mls_rs::{CipherSuite, Client, ExtensionList, MlsMessage};
use mls_rs_core::extension::MlsExtension;

use crate::big_group::{HushRules, TreeRef};
use crate::conversation::{Conversation, ConversationInfo, ConversationKind, PendingCommit};
use crate::crypto::{HushCryptoProvider, XWING_CHACHA20POLY1305_SHA256_ED25519};
use crate::error::ProtoError;
use crate::identity::{DeviceCertificate, DeviceSigningKey, HushIdentityProvider, IdentityError};
use crate::storage::{MemoryStore, StateChange, StateKey};
use crate::{Timestamp, conversation};

/// The MLS configuration every Hush device uses.
pub(crate) type HushConfig = WithIdentityProvider<
    HushIdentityProvider,
    WithCryptoProvider<
        HushCryptoProvider,
        WithMlsRules<
            HushRules,
            WithGroupStateStorage<MemoryStore, WithKeyPackageRepo<MemoryStore, BaseConfig>>,
        >,
    >,
>;

/// How long a published KeyPackage stays valid.
pub const KEY_PACKAGE_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// The ciphersuites of Hush's conversations (docs/cryptography.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Suite {
    /// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519` (0x0001), interoperable
    /// with any RFC 9420 implementation.
    Classical,
    /// `MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519` (0x004D): the X-Wing
    /// hybrid KEM (ML-KEM-768 + X25519, draft-connolly-cfrg-xwing-kem-06 and
    /// later) with ChaCha20-Poly1305, SHA-256 and Ed25519, the code point
    /// and construction of OpenMLS. The default for new conversations.
    #[default]
    Hybrid,
    /// mls-rs's private suite 65100 (an X-Wing draft-01 combiner with
    /// AES-128-GCM), the default before decision 0031. Conversations in it
    /// load, send, receive and commit; none is started in it, no KeyPackage
    /// is made for it, and [`Device::migrate_conversation`] moves one to
    /// [`Suite::Hybrid`].
    LegacyHybrid,
}

impl Suite {
    /// The suites new conversations and KeyPackages use, hybrid first.
    pub const ALL: [Suite; 2] = [Suite::Hybrid, Suite::Classical];

    /// The MLS ciphersuite number.
    pub fn cipher_suite(self) -> CipherSuite {
        match self {
            Suite::Classical => CipherSuite::CURVE25519_AES128,
            Suite::Hybrid => XWING_CHACHA20POLY1305_SHA256_ED25519,
            Suite::LegacyHybrid => CipherSuite::ML_KEM_768_X25519,
        }
    }

    /// The suite for an MLS ciphersuite number, if Hush uses it.
    pub fn from_cipher_suite(cs: CipherSuite) -> Option<Suite> {
        match cs {
            CipherSuite::CURVE25519_AES128 => Some(Suite::Classical),
            XWING_CHACHA20POLY1305_SHA256_ED25519 => Some(Suite::Hybrid),
            CipherSuite::ML_KEM_768_X25519 => Some(Suite::LegacyHybrid),
            _ => None,
        }
    }

    /// Whether new conversations and KeyPackages may use it.
    pub fn is_current(self) -> bool {
        Suite::ALL.contains(&self)
    }

    /// The name used in CLIs and APIs: `classical`, `pq` or `pq-legacy`.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Classical => "classical",
            Suite::Hybrid => "pq",
            Suite::LegacyHybrid => "pq-legacy",
        }
    }

    /// Parses [`Suite::name`].
    pub fn from_name(name: &str) -> Option<Suite> {
        match name {
            "classical" => Some(Suite::Classical),
            "pq" | "hybrid" => Some(Suite::Hybrid),
            "pq-legacy" => Some(Suite::LegacyHybrid),
            _ => None,
        }
    }
}

/// A KeyPackage ready to upload.
#[derive(Debug, Clone)]
pub struct KeyPackage {
    /// Which suite it is for.
    pub suite: Suite,
    /// RFC 9420 `MLSMessage` bytes (wire format `mls_key_package`).
    pub message: Vec<u8>,
    /// Never deleted after use (RFC 9420 `last_resort` extension).
    pub last_resort: bool,
}

/// One device: its certificate, signing key and MLS state.
#[derive(Debug)]
pub struct Device {
    cert: DeviceCertificate,
    /// Shared with both clients' rules: see [`Device::play_modified_client`].
    check_own: std::sync::Arc<std::sync::atomic::AtomicBool>,
    store: MemoryStore,
    classical: Client<HushConfig>,
    hybrid: Client<HushConfig>,
    legacy: Client<HushConfig>,
    legacy_writes: bool,
}

impl Device {
    /// A device from its certificate and signing key, with an empty state.
    pub fn new(cert: DeviceCertificate, key: &DeviceSigningKey) -> Result<Self, ProtoError> {
        Self::with_store(cert, key, MemoryStore::new())
    }

    /// A device whose state is restored from entries the caller persisted (see
    /// [`Device::take_changes`]).
    pub fn restore(
        cert: DeviceCertificate,
        key: &DeviceSigningKey,
        entries: impl IntoIterator<Item = (StateKey, zeroize::Zeroizing<Vec<u8>>)>,
    ) -> Result<Self, ProtoError> {
        let store = MemoryStore::new();
        store.restore(entries)?;
        // Restoring is not a change: nothing needs to be written back.
        store.take_changes();
        Self::with_store(cert, key, store)
    }

    fn with_store(
        cert: DeviceCertificate,
        key: &DeviceSigningKey,
        store: MemoryStore,
    ) -> Result<Self, ProtoError> {
        cert.verify()?;
        if cert.signature_key() != &key.public() {
            return Err(IdentityError::SignatureKeyMismatch.into());
        }
        let check_own = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let client = |suite: Suite| {
            Client::builder()
                .key_package_repo(store.clone())
                .group_state_storage(store.clone())
                .mls_rules(HushRules::new(check_own.clone()))
                .crypto_provider(HushCryptoProvider)
                .identity_provider(HushIdentityProvider)
                .extension_type(conversation::INFO_EXTENSION)
                .extension_type(conversation::POLICY_EXTENSION)
                .extension_type(crate::invite::LINKS_EXTENSION)
                .key_package_lifetime(KEY_PACKAGE_LIFETIME)
                .signing_identity(
                    cert.signing_identity(),
                    key.mls_secret(),
                    suite.cipher_suite(),
                )
                .build()
        };
        Ok(Self {
            classical: client(Suite::Classical),
            hybrid: client(Suite::Hybrid),
            legacy: client(Suite::LegacyHybrid),
            legacy_writes: false,
            check_own,
            cert,
            store,
        })
    }

    /// Makes this device build commits the admin rules forbid (decision
    /// 0032), as a modified client would. Only for tests that play that
    /// attacker: what this device receives is judged as before.
    #[doc(hidden)]
    pub fn play_modified_client(&self) {
        self.check_own
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether this device holds its own commits to the admin rules (see
    /// [`Device::play_modified_client`]).
    #[doc(hidden)]
    pub fn checks_own_rules(&self) -> bool {
        self.check_own.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// This device's certificate.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.cert
    }

    /// The state writes since the last call, for the caller to persist before
    /// it acknowledges anything that caused them.
    pub fn take_changes(&self) -> Vec<StateChange> {
        self.store.take_changes()
    }

    /// Bytes of state this device has handed to the caller to write (the
    /// values of every [`StateChange::Put`] so far): the storage cost of
    /// what it did.
    pub fn state_bytes_written(&self) -> u64 {
        self.store.bytes_written()
    }

    /// Ids of the conversations in this device's state.
    pub fn conversation_ids(&self) -> Vec<Vec<u8>> {
        self.store.group_ids()
    }

    /// The number of unused KeyPackage secrets this device holds.
    pub fn key_package_secrets(&self) -> usize {
        self.store.key_package_count()
    }

    fn client(&self, suite: Suite) -> &Client<HushConfig> {
        match suite {
            Suite::Classical => &self.classical,
            Suite::Hybrid => &self.hybrid,
            Suite::LegacyHybrid => &self.legacy,
        }
    }

    /// Lets this device make KeyPackages and start conversations in
    /// [`Suite::LegacyHybrid`], as versions before decision 0031 did. Only
    /// for tests that need the data those versions wrote.
    #[doc(hidden)]
    pub fn allow_legacy_writes_for_tests(&mut self) {
        self.legacy_writes = true;
    }

    fn current_client(&self, suite: Suite) -> Result<&Client<HushConfig>, ProtoError> {
        if !suite.is_current() && !self.legacy_writes {
            return Err(ProtoError::InvalidRequest(
                "the legacy suite 65100 is only read: use Suite::Hybrid",
            ));
        }
        Ok(self.client(suite))
    }

    /// A fresh KeyPackage for `suite`. Its secrets go to the state store; the
    /// message is for the server.
    pub fn generate_key_package(
        &self,
        suite: Suite,
        last_resort: bool,
        now: Timestamp,
    ) -> Result<KeyPackage, ProtoError> {
        let mut extensions = ExtensionList::new();
        if last_resort {
            extensions.set(
                LastResortKeyPackageExt
                    .into_extension()
                    .map_err(|_| ProtoError::InvalidRequest("last-resort extension"))?,
            );
        }
        let message = self.current_client(suite)?.generate_key_package_message(
            extensions,
            ExtensionList::new(),
            Some(now.mls()),
        )?;
        Ok(KeyPackage {
            suite,
            message: message.to_bytes()?,
            last_resort,
        })
    }

    /// Starts a conversation of `kind` in `suite` with the devices whose
    /// KeyPackages are given (every device of every other member, and this
    /// account's other devices). Returns the conversation, already at the new
    /// epoch, and the Welcome for the invited devices.
    pub fn create_conversation(
        &self,
        suite: Suite,
        info: &ConversationInfo,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>), ProtoError> {
        self.create_conversation_with_id(suite, info, None, key_packages, now)
    }

    /// [`Device::create_conversation`] with a group id of the caller's
    /// choosing (random when `None`). Whoever creates a group picks its id:
    /// receivers must never trust it to be new (tests use this to play a
    /// member who reuses one).
    pub fn create_conversation_with_id(
        &self,
        suite: Suite,
        info: &ConversationInfo,
        group_id: Option<Vec<u8>>,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>), ProtoError> {
        if info.kind == ConversationKind::Direct && key_packages.is_empty() {
            return Err(ProtoError::InvalidRequest(
                "a 1:1 conversation needs the other account's devices",
            ));
        }
        let mut context = ExtensionList::new();
        context.set(info.to_extension());
        if info.kind == ConversationKind::Group {
            let creator = self.cert.username().clone();
            context.set(conversation::GroupPolicy::new(creator).to_extension());
        }
        self.create_in_context(suite, context, group_id, key_packages, now)
    }

    /// Creates a conversation whose group context is `context` (its info
    /// and policy), adding the devices of `key_packages`.
    pub(crate) fn create_in_context(
        &self,
        suite: Suite,
        context: ExtensionList,
        group_id: Option<Vec<u8>>,
        key_packages: &[Vec<u8>],
        now: Timestamp,
    ) -> Result<(Conversation, Option<PendingCommit>), ProtoError> {
        let client = self.current_client(suite)?;
        let group = match group_id {
            Some(id) => {
                client.create_group_with_id(id, context, ExtensionList::new(), Some(now.mls()))?
            }
            None => client.create_group(context, ExtensionList::new(), Some(now.mls()))?,
        };
        let mut conv = self.wrap(group);
        conv.persist()?;
        if key_packages.is_empty() {
            return Ok((conv, None));
        }
        let pending = conv.add_devices(key_packages, now)?;
        // Nobody else is in the group yet, so no other commit can race this one.
        conv.confirm_commit()?;
        Ok((conv, Some(pending)))
    }

    /// Joins a conversation from a Welcome addressed to one of this device's
    /// KeyPackages, when its tree is in the Welcome.
    pub fn join(&self, welcome: &[u8], now: Timestamp) -> Result<Conversation, ProtoError> {
        self.join_with_tree(welcome, None, now)
    }

    /// Where the tree of a Welcome is when it travels out of band (see
    /// [`crate::big_group`]): fetch that blob and pass it to
    /// [`Device::join_with_tree`]. `None` when the Welcome carries its tree.
    pub fn welcome_tree(&self, welcome: &[u8]) -> Result<Option<TreeRef>, ProtoError> {
        let message = MlsMessage::from_bytes(welcome)?;
        let info = self.hybrid.examine_welcome_message(&message)?;
        crate::big_group::pointer_of(info.extensions())
    }

    /// Joins from a Welcome and, when its tree travels out of band, the blob
    /// [`Device::welcome_tree`] names. A blob that is not exactly the one the
    /// committer sealed, or a tree that does not match the signed group
    /// context, is refused and nothing changes.
    pub fn join_with_tree(
        &self,
        welcome: &[u8],
        tree_blob: Option<&[u8]>,
        now: Timestamp,
    ) -> Result<Conversation, ProtoError> {
        let message = MlsMessage::from_bytes(welcome)?;
        let info = self.hybrid.examine_welcome_message(&message)?;
        let pointer = crate::big_group::pointer_of(info.extensions())?;
        let tree = match (pointer, tree_blob) {
            (None, None) => None,
            (Some(_), Some(blob)) => Some(crate::big_group::open_tree(
                info.extensions(),
                info.group_context(),
                blob,
            )?),
            (Some(_), None) => {
                return Err(ProtoError::InvalidRequest(
                    "the Welcome's ratchet tree travels out of band: fetch it first",
                ));
            }
            (None, Some(_)) => {
                return Err(ProtoError::InvalidRequest(
                    "the Welcome carries its ratchet tree",
                ));
            }
        };
        let tree = tree.as_deref().map(ExportedTree::from_bytes).transpose()?;
        let (group, _info) = self.hybrid.join_group(tree, &message, Some(now.mls()))?;
        let mut conv = self.wrap(group);
        conv.persist()?;
        Ok(conv)
    }

    /// Loads a conversation from the state store.
    pub fn load(&self, group_id: &[u8]) -> Result<Conversation, ProtoError> {
        let tree = self
            .store
            .tree(group_id)
            .ok_or(ProtoError::UnknownConversation)?;
        let tree = ExportedTree::from_bytes(&tree)?;
        let group = self.hybrid.load_group_with_ratchet_tree(group_id, tree)?;
        let mut conv = self.wrap(group);
        conv.mark_tree_persisted();
        Ok(conv)
    }

    fn wrap(&self, group: mls_rs::Group<HushConfig>) -> Conversation {
        Conversation::new(
            group,
            self.hybrid.clone(),
            self.store.clone(),
            self.cert.clone(),
            self.check_own.clone(),
        )
    }

    #[cfg(test)]
    pub(crate) fn store(&self) -> &MemoryStore {
        &self.store
    }

    /// Forgets a conversation (after leaving it or being removed).
    pub fn forget(&self, group_id: &[u8]) {
        self.store.delete_group(group_id);
    }
}

/// What a server can check of an uploaded KeyPackage without any secret.
#[derive(Debug, Clone)]
pub struct KeyPackageInfo {
    /// Its suite.
    pub suite: Suite,
    /// The device certificate in its credential, already verified.
    pub certificate: DeviceCertificate,
    /// Whether it carries the last-resort extension.
    pub last_resort: bool,
    /// When it expires, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Parses an RFC 9420 KeyPackage message and checks its credential chain.
/// Used by the server to refuse garbage and KeyPackages for another device;
/// members still validate fully (signatures, lifetime) when they add it.
pub fn inspect_key_package(bytes: &[u8]) -> Result<KeyPackageInfo, ProtoError> {
    let kp = MlsMessage::from_bytes(bytes)?
        .into_key_package()
        .ok_or(ProtoError::InvalidRequest("not a KeyPackage message"))?;
    let suite = Suite::from_cipher_suite(kp.cipher_suite)
        .filter(|s| s.is_current())
        .ok_or(ProtoError::InvalidRequest("ciphersuite not used by Hush"))?;
    let certificate = HushIdentityProvider::check(kp.signing_identity())?;
    let last_resort = kp
        .extensions
        .has_extension(mls_rs_core::extension::ExtensionType::LAST_RESORT_KEY_PACKAGE);
    let expires_at_ms = kp
        .expiration()
        .map(|t| t.seconds_since_epoch().saturating_mul(1000))
        .map_err(ProtoError::from)?;
    Ok(KeyPackageInfo {
        suite,
        certificate,
        last_resort,
        expires_at_ms,
    })
}
