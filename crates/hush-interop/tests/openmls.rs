//! Hush's MLS configuration against OpenMLS, an independent implementation:
//! in the classical suite 0x0001 and in the X-Wing suite 0x004D a group is
//! formed in each direction (each side creates once and invites the other),
//! application messages go both ways, each side commits with an update path
//! the other processes (so each derives the other's tree keys from path
//! secrets, through the suite's HPKE), and both agree on the epoch
//! authenticator at every step.
//!
//! The Hush side is mls-rs with `HushCryptoProvider` and Hush's commit
//! options (path required, encrypted handshake messages, ratchet tree in the
//! Welcome); credentials are basic ones on both sides, since OpenMLS does not
//! know Hush's device certificates.
//!
//! The OpenMLS side uses its RustCrypto provider (`openmls_rust_crypto`) for
//! 0x0001 and its libcrux provider (`openmls_libcrux_crypto`, libcrux's
//! X-Wing draft-06 through hpke-rs) for 0x004D, which the RustCrypto
//! provider refuses (`UnsupportedCiphersuite`). Hush's X-Wing is RustCrypto's
//! `x-wing` crate: the 0x004D tests are two independent X-Wing
//! implementations meeting, as well as two MLS stacks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::crypto::{HushCryptoProvider, XWING_CHACHA20POLY1305_SHA256_ED25519};
use mls_rs::client_builder::{
    BaseConfig, PaddingMode, WithCryptoProvider, WithIdentityProvider, WithMlsRules,
};
use mls_rs::group::ReceivedMessage;
use mls_rs::identity::SigningIdentity;
use mls_rs::identity::basic::{BasicCredential as HushBasic, BasicIdentityProvider};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules, EncryptionOptions};
use mls_rs::{CipherSuite, CipherSuiteProvider, Client, CryptoProvider, Group, MlsMessage};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls::treesync::LeafNodeParameters;
use openmls_basic_credential::SignatureKeyPair;
use openmls_libcrux_crypto::Provider as OpenMlsLibcrux;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider;
use openmls_traits::types::SignatureScheme;

type HushConfig = WithIdentityProvider<
    BasicIdentityProvider,
    WithCryptoProvider<HushCryptoProvider, WithMlsRules<DefaultMlsRules, BaseConfig>>,
>;

fn hush_client(cs: CipherSuite, name: &str) -> Client<HushConfig> {
    let (secret, public) = HushCryptoProvider
        .cipher_suite_provider(cs)
        .unwrap()
        .signature_key_generate()
        .unwrap();
    let identity = SigningIdentity::new(
        HushBasic::new(name.as_bytes().to_vec()).into_credential(),
        public,
    );
    let rules = DefaultMlsRules::new()
        .with_commit_options(
            CommitOptions::new()
                .with_path_required(true)
                .with_ratchet_tree_extension(true)
                .with_single_welcome_message(true),
        )
        .with_encryption_options(EncryptionOptions::new(true, PaddingMode::None));
    Client::builder()
        .mls_rules(rules)
        .crypto_provider(HushCryptoProvider)
        .identity_provider(BasicIdentityProvider::new())
        .signing_identity(identity, secret, cs)
        .build()
}

/// The OpenMLS side: its provider, signer and credential.
struct Open<P> {
    provider: P,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    suite: Ciphersuite,
}

impl<P: OpenMlsProvider + Default> Open<P> {
    fn new(suite: Ciphersuite, name: &str) -> Self {
        let provider = P::default();
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
        signer.store(provider.storage()).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Self {
            provider,
            signer,
            credential,
            suite,
        }
    }

    fn key_package(&self) -> Vec<u8> {
        let bundle = KeyPackage::builder()
            .build(
                self.suite,
                &self.provider,
                &self.signer,
                self.credential.clone(),
            )
            .unwrap();
        MlsMessageOut::from(bundle.key_package().clone())
            .to_bytes()
            .unwrap()
    }

    fn join(&self, welcome: &[u8]) -> MlsGroup {
        let MlsMessageBodyIn::Welcome(welcome) = MlsMessageIn::tls_deserialize_exact(welcome)
            .unwrap()
            .extract()
        else {
            panic!("not a Welcome")
        };
        let config = MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .build();
        StagedWelcome::new_from_welcome(&self.provider, &config, welcome, None)
            .unwrap()
            .into_group(&self.provider)
            .unwrap()
    }

    fn create(&self) -> MlsGroup {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(self.suite)
            .use_ratchet_tree_extension(true)
            .build();
        MlsGroup::new(
            &self.provider,
            &self.signer,
            &config,
            self.credential.clone(),
        )
        .unwrap()
    }

    fn process(&self, group: &mut MlsGroup, bytes: &[u8]) -> ProcessedMessageContent {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .unwrap()
            .try_into_protocol_message()
            .unwrap();
        group
            .process_message(&self.provider, message)
            .unwrap()
            .into_content()
    }
}

fn hush_receive(group: &mut Group<HushConfig>, bytes: &[u8]) -> ReceivedMessage {
    group
        .process_incoming_message(MlsMessage::from_bytes(bytes).unwrap())
        .unwrap()
}

fn same_epoch(hush: &Group<HushConfig>, open: &MlsGroup) {
    assert_eq!(hush.current_epoch(), open.epoch().as_u64());
    assert_eq!(
        hush.epoch_authenticator().unwrap().to_vec(),
        open.epoch_authenticator().as_slice()
    );
}

/// Messages both ways, then a commit from each side, in an established group.
fn exchange<P: OpenMlsProvider + Default>(
    hush: &mut Group<HushConfig>,
    open: &Open<P>,
    group: &mut MlsGroup,
) {
    same_epoch(hush, group);
    let m = hush
        .encrypt_application_message(b"from hush", vec![])
        .unwrap();
    match open.process(group, &m.to_bytes().unwrap()) {
        ProcessedMessageContent::ApplicationMessage(a) => assert_eq!(a.into_bytes(), b"from hush"),
        other => panic!("OpenMLS got {other:?}"),
    }
    let m = group
        .create_message(&open.provider, &open.signer, b"from openmls")
        .unwrap();
    match hush_receive(hush, &m.to_bytes().unwrap()) {
        ReceivedMessage::ApplicationMessage(a) => assert_eq!(a.data(), b"from openmls"),
        other => panic!("Hush got {other:?}"),
    }

    // OpenMLS commits with a path: Hush derives its new tree keys.
    let bundle = group
        .self_update(&open.provider, &open.signer, LeafNodeParameters::default())
        .unwrap();
    group.merge_pending_commit(&open.provider).unwrap();
    let commit = bundle.commit().to_bytes().unwrap();
    assert!(matches!(
        hush_receive(hush, &commit),
        ReceivedMessage::Commit(_)
    ));
    same_epoch(hush, group);

    // Hush commits with a path: OpenMLS derives them.
    let out = hush.commit(vec![]).unwrap();
    hush.apply_pending_commit().unwrap();
    match open.process(group, &out.commit_message.to_bytes().unwrap()) {
        ProcessedMessageContent::StagedCommitMessage(staged) => {
            group.merge_staged_commit(&open.provider, *staged).unwrap()
        }
        other => panic!("OpenMLS got {other:?}"),
    }
    same_epoch(hush, group);

    let m = hush.encrypt_application_message(b"after", vec![]).unwrap();
    assert!(matches!(
        open.process(group, &m.to_bytes().unwrap()),
        ProcessedMessageContent::ApplicationMessage(_)
    ));
}

fn hush_creates<P: OpenMlsProvider + Default>(hush_suite: CipherSuite, open_suite: Ciphersuite) {
    let open = Open::<P>::new(open_suite, "openmls");
    let mut hush = hush_client(hush_suite, "hush")
        .create_group(Default::default(), Default::default(), None)
        .unwrap();
    let kp = MlsMessage::from_bytes(&open.key_package()).unwrap();
    let out = hush
        .commit_builder()
        .add_member(kp)
        .unwrap()
        .build()
        .unwrap();
    hush.apply_pending_commit().unwrap();
    let mut group = open.join(&out.welcome_messages[0].to_bytes().unwrap());
    assert_eq!(group.ciphersuite(), open_suite);
    exchange(&mut hush, &open, &mut group);
}

fn openmls_creates<P: OpenMlsProvider + Default>(hush_suite: CipherSuite, open_suite: Ciphersuite) {
    let open = Open::<P>::new(open_suite, "openmls");
    let hush_client = hush_client(hush_suite, "hush");
    let kp = hush_client
        .generate_key_package_message(Default::default(), Default::default(), None)
        .unwrap()
        .to_bytes()
        .unwrap();
    let mut group = open.create();
    let MlsMessageBodyIn::KeyPackage(kp) =
        MlsMessageIn::tls_deserialize_exact(&kp).unwrap().extract()
    else {
        panic!("not a KeyPackage")
    };
    let kp = kp
        .validate(open.provider.crypto(), ProtocolVersion::Mls10)
        .unwrap();
    let (_commit, welcome, _) = group
        .add_members(&open.provider, &open.signer, &[kp])
        .unwrap();
    group.merge_pending_commit(&open.provider).unwrap();
    let (mut hush, _) = hush_client
        .join_group(
            None,
            &MlsMessage::from_bytes(&welcome.to_bytes().unwrap()).unwrap(),
            None,
        )
        .unwrap();
    assert_eq!(hush.cipher_suite(), hush_suite);
    exchange(&mut hush, &open, &mut group);
}

#[test]
fn classical_suite_hush_creates() {
    hush_creates::<OpenMlsRustCrypto>(
        CipherSuite::CURVE25519_AES128,
        Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    );
}

#[test]
fn classical_suite_openmls_creates() {
    openmls_creates::<OpenMlsRustCrypto>(
        CipherSuite::CURVE25519_AES128,
        Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519,
    );
}

#[test]
fn xwing_suite_hush_creates() {
    hush_creates::<OpenMlsLibcrux>(
        XWING_CHACHA20POLY1305_SHA256_ED25519,
        Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519,
    );
}

#[test]
fn xwing_suite_openmls_creates() {
    openmls_creates::<OpenMlsLibcrux>(
        XWING_CHACHA20POLY1305_SHA256_ED25519,
        Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519,
    );
}

/// OpenMLS's RustCrypto provider still refuses 0x004D: the X-Wing tests
/// above need the libcrux provider (if this starts failing, the RustCrypto
/// provider gained the suite and could run them too).
#[test]
fn the_rust_crypto_provider_refuses_xwing() {
    let provider = OpenMlsRustCrypto::default();
    assert!(
        provider
            .crypto()
            .supports(Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519)
            .is_err()
    );
    assert!(
        OpenMlsLibcrux::default()
            .crypto()
            .supports(Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519)
            .is_ok()
    );
}

#[test]
fn the_code_points_agree() {
    assert_eq!(
        u16::from(Ciphersuite::MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519),
        XWING_CHACHA20POLY1305_SHA256_ED25519.raw_value()
    );
}
