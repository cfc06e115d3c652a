use super::*;
use rand_core::SeedableRng;

fn sample() -> Archive {
    Archive {
        username: "alice".into(),
        created_at_ms: 7,
        account_seed: Some(Zeroizing::new([5; 32])),
        kt_signing_key: vec![1; 32],
        kt_vrf_key: vec![2; 32],
        devices: vec![ArchivedDevice {
            certificate: vec![3; 40],
            name: Some("laptop".into()),
            removed: false,
        }],
        settings: vec![("presence".into(), b"contacts".to_vec())],
        contacts: vec![ArchivedContact {
            username: "bob".into(),
            account_key: vec![4; 32],
            first_seen: 1,
            verified: true,
            verified_key: Some(vec![4; 32]),
            key_changed: 0,
            blocked: false,
            profile_key: None,
            display_name: Some("Bob".into()),
        }],
        conversations: vec![ArchivedConversation {
            group_id: vec![9; 16],
            kind: "group".into(),
            peer: None,
            name: Some("family".into()),
            disappear_secs: Some(60),
            active: true,
            created_at: 3,
            messages: vec![ArchivedMessage {
                id: "m1".into(),
                sender: "bob".into(),
                sender_device: 1,
                outgoing: false,
                kind: "text".into(),
                body: Some("hello".into()),
                reply_to: None,
                attachment: None,
                sent_at: 4,
                received_at: 5,
                expires_at: None,
                status: "received".into(),
                edited: false,
                deleted: false,
                franking: None,
                extras: MessageExtras {
                    poll: Some(r#"{"options":["tea","coffee"],"multiple":false}"#.into()),
                    mentions: Some(r#"["alice"]"#.into()),
                    mentions_me: true,
                    forwarded: true,
                    reactions: vec![ArchivedReaction {
                        member: "alice".into(),
                        emoji: Some("👍".into()),
                        sent_at: 6,
                    }],
                    votes: vec![ArchivedVote {
                        member: "bob".into(),
                        options: "[1]".into(),
                        sent_at: 7,
                    }],
                    pin: Some(ArchivedPin {
                        pinned: true,
                        member: "alice".into(),
                        sent_at: 8,
                    }),
                },
            }],
        }],
    }
}

fn rng() -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(26)
}

#[test]
fn an_archive_round_trips_sealed() {
    let key = [8u8; 32];
    let sealed = seal(&key, Purpose::Backup, &sample(), &mut rng());
    assert_eq!(open(&key, Purpose::Backup, &sealed).unwrap(), sample());
    assert_eq!(sample().message_count(), 1);
}

#[test]
fn a_wrong_key_is_told_apart_from_damage() {
    let sealed = seal(&[8; 32], Purpose::Backup, &sample(), &mut rng());
    assert_eq!(
        open(&[9; 32], Purpose::Backup, &sealed),
        Err(ArchiveError::WrongKey)
    );
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert_eq!(
        open(&[8; 32], Purpose::Backup, &flipped),
        Err(ArchiveError::Corrupt)
    );
    // A header edit (here the salt) is caught too.
    let mut salted = sealed.clone();
    salted[12] ^= 1;
    assert!(open(&[8; 32], Purpose::Backup, &salted).is_err());
}

#[test]
fn truncated_trailing_newer_and_wrong_purpose_are_refused() {
    let key = [8u8; 32];
    let sealed = seal(&key, Purpose::Backup, &sample(), &mut rng());
    for cut in [0, 5, HEADER_LEN - 1, HEADER_LEN, sealed.len() - 1] {
        let err = open(&key, Purpose::Backup, &sealed[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::Truncated { .. } | ArchiveError::NotAnArchive
            ),
            "{cut}: {err}"
        );
    }
    let mut long = sealed.clone();
    long.push(0);
    assert_eq!(
        open(&key, Purpose::Backup, &long),
        Err(ArchiveError::Trailing(1))
    );
    let mut newer = sealed.clone();
    newer[8] = FORMAT_VERSION + 1;
    assert_eq!(
        open(&key, Purpose::Backup, &newer),
        Err(ArchiveError::NewerVersion(FORMAT_VERSION + 1))
    );
    assert!(matches!(
        open(&key, Purpose::Link, &sealed),
        Err(ArchiveError::WrongPurpose(_))
    ));
}

#[test]
fn every_truncation_of_the_plaintext_is_refused() {
    let plain = sample().encode();
    for cut in 0..plain.len() {
        assert!(Archive::decode(&plain[..cut]).is_err(), "{cut}");
    }
    let mut extra = plain.clone();
    extra.push(0);
    assert!(Archive::decode(&extra).is_err());
}

#[test]
fn a_huge_count_allocates_nothing_and_fails() {
    let mut a = sample();
    a.conversations.clear();
    let mut plain = a.encode();
    // The conversation count is the last four bytes.
    let n = plain.len();
    plain[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Archive::decode(&plain),
        Err(DecodeError::Incomplete { .. })
    ));
}

#[test]
fn a_backup_locator_is_fixed_per_key_and_tells_nothing_of_it() {
    let a = backup_locator(&[1; 32]);
    assert_eq!(
        a,
        backup_locator(&[1; 32]),
        "the same key finds the same backup"
    );
    assert_ne!(a, backup_locator(&[2; 32]));
    assert_ne!(a, [1; 32]);
    // Not the archive's AEAD key or key check under any salt either: a
    // different label (checked here for the all-zero salt).
    let (aead, check) = derive(&[1; 32], &[0; 32], Purpose::Backup);
    assert_ne!(a, *aead);
    assert_ne!(a[..16], check);
}

/// A backup sealed by the release before format 2 (the fuzz corpus keeps
/// its bytes): it still opens, whole, its messages without extras, and
/// re-sealed it opens as the same archive.
#[test]
fn a_format_1_backup_of_the_previous_release_opens() {
    let sealed = include_bytes!("../../../../fuzz/corpus/archive_open/v1-backup");
    assert_eq!(sealed[0], 0, "the corpus's tag for a backup");
    let sealed = &sealed[1..];
    assert_eq!(sealed[8], 1, "format 1");
    let key = [26u8; 32];
    let archive = open(&key, Purpose::Backup, sealed).unwrap();
    assert_eq!(archive.username, "alice");
    assert_eq!(archive.message_count(), 3);
    let messages = &archive.conversations[0].messages;
    assert_eq!(messages[2].body.as_deref(), Some("message 2"));
    assert!(
        messages
            .iter()
            .all(|m| m.extras == MessageExtras::default())
    );
    let again = seal(&key, Purpose::Backup, &archive, &mut rng());
    assert_eq!(again[8], FORMAT_VERSION);
    assert_eq!(open(&key, Purpose::Backup, &again).unwrap(), archive);
}
