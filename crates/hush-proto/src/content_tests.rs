//! Tests of the content codec.

use super::*;

fn text_content(text: &str) -> Content {
    Content {
        id: MessageId([7; 16]),
        sent_at_ms: 1_700_000_000_000,
        expire_timer_secs: None,
        kt_checkpoint: None,
        body: Body::Text {
            text: text.into(),
            reply_to: None,
        },
        meta: PostMeta::default(),
    }
}

#[test]
fn text_round_trips() {
    let c = text_content("hello");
    assert_eq!(Content::decode(&c.encode()).unwrap(), c);
}

#[test]
fn unknown_kind_is_unsupported_not_an_error() {
    let mut c = text_content("x");
    c.body = Body::Unsupported { kind: 999 };
    let mut bytes = c.encode();
    // a field of the unknown kind, mandatory or not, is not ours to judge
    bytes.extend_from_slice(&[0, 1, 0, 0, 0, 1, 42]);
    assert_eq!(
        Content::decode(&bytes).unwrap().body,
        Body::Unsupported { kind: 999 }
    );
}

#[test]
fn unknown_optional_field_is_skipped_and_mandatory_rejected() {
    let mut bytes = text_content("x").encode();
    bytes.extend_from_slice(&[0x90, 0x00, 0, 0, 0, 1, 5]);
    assert!(Content::decode(&bytes).is_ok());
    let mut bytes = text_content("x").encode();
    bytes.extend_from_slice(&[0x10, 0x00, 0, 0, 0, 0]);
    assert_eq!(
        Content::decode(&bytes),
        Err(DecodeError::UnknownMandatoryField {
            kind: "text",
            tag: 0x1000
        })
    );
}

#[test]
fn trailing_bytes_inside_a_field_are_rejected() {
    let c = Content {
        body: Body::Typing { started: true },
        ..text_content("")
    };
    let mut bytes = c.encode();
    // typing field: tag 1, length 1, value 1 -> make the length 2
    let n = bytes.len();
    bytes[n - 2] = 2;
    bytes.push(0);
    assert_eq!(Content::decode(&bytes), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn out_of_order_and_duplicate_fields_are_rejected() {
    let mut bytes = text_content("x").encode();
    bytes.extend_from_slice(&[0, 1, 0, 0, 0, 1, b'y']);
    assert!(matches!(
        Content::decode(&bytes),
        Err(DecodeError::Invalid {
            field: "field order",
            ..
        })
    ));
}

#[test]
fn truncated_input_is_incomplete() {
    let bytes = text_content("hello").encode();
    assert!(matches!(
        Content::decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Incomplete { .. })
    ));
}

#[test]
fn reactions_round_trip_and_bad_emoji_are_refused() {
    for emoji in [Some("👍".to_owned()), Some("❤️‍🔥".to_owned()), None] {
        let c = Content {
            body: Body::Reaction {
                target: MessageId([3; 16]),
                emoji,
            },
            ..text_content("")
        };
        assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    }
    for bad in ["", "\u{1b}[2J", &"x".repeat(MAX_EMOJI_LEN + 1)] {
        let c = Content {
            body: Body::Reaction {
                target: MessageId([3; 16]),
                emoji: Some(bad.to_owned()),
            },
            ..text_content("")
        };
        assert!(Content::decode(&c.encode()).is_err(), "{bad:?}");
    }
}

#[test]
fn mentions_round_trip_sorted_and_bad_lists_are_refused() {
    let name = |s: &str| Username::new(s).unwrap();
    let mut c = text_content("hi @carol @bob");
    c.meta.mentions = vec![name("carol"), name("bob"), name("carol")];
    let decoded = Content::decode(&c.encode()).unwrap();
    assert_eq!(decoded.meta.mentions, [name("bob"), name("carol")]);
    // By hand: out of order, repeated, not a username, empty.
    for list in [
        &b"\x05carol\x03bob"[..],
        b"\x03bob\x03bob",
        b"\x03B0B",
        b"",
        b"\x09bob",
    ] {
        let mut bytes = text_content("x").encode();
        bytes.extend_from_slice(&FIELD_MENTIONS.to_be_bytes());
        bytes.extend_from_slice(&(list.len() as u32).to_be_bytes());
        bytes.extend_from_slice(list);
        assert!(Content::decode(&bytes).is_err(), "{list:?}");
    }
}

#[test]
fn the_forwarded_mark_round_trips_and_carries_no_value() {
    let mut c = text_content("fwd");
    c.meta.forwarded = true;
    assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    let mut bytes = text_content("fwd").encode();
    bytes.extend_from_slice(&FIELD_FORWARDED.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 1, 1]);
    assert!(Content::decode(&bytes).is_err());
}

#[test]
fn polls_and_votes_round_trip_and_bad_ones_are_refused() {
    let poll = |options: &[&str]| Content {
        body: Body::Poll {
            question: "Where?".into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            multiple: false,
        },
        ..text_content("")
    };
    let c = poll(&["Park", "Café ☕"]);
    assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    for bad in [&["only one"][..], &["a", ""], &["a"; MAX_POLL_OPTIONS + 1]] {
        assert!(Content::decode(&poll(bad).encode()).is_err(), "{bad:?}");
    }
    let vote = |options: Vec<u8>| Content {
        body: Body::Vote {
            poll: MessageId([5; 16]),
            options,
        },
        ..text_content("")
    };
    for good in [vec![], vec![0], vec![1, 3, 11]] {
        let c = vote(good);
        assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    }
    for bad in [vec![1, 1], vec![2, 1], vec![12]] {
        assert!(
            Content::decode(&vote(bad.clone()).encode()).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn pins_round_trip() {
    for pinned in [true, false] {
        let c = Content {
            body: Body::Pin {
                target: MessageId([4; 16]),
                pinned,
            },
            ..text_content("")
        };
        assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    }
}

#[test]
fn message_id_hex_round_trips() {
    let id = MessageId([0xab; 16]);
    assert_eq!(MessageId::from_hex(&id.to_hex()), Some(id));
    assert_eq!(MessageId::from_hex("zz"), None);
    assert_eq!(MessageId::from_hex(&"é".repeat(16)), None);
}

#[test]
fn channel_admin_round_trips_and_refuses_oversized_fields() {
    let grant = ChannelGrant {
        link: "https://hush.example/channel#00".into(),
        admin_seed: [3; 32],
        post_token: vec![4; 32],
        descriptor: vec![1, 2, 3],
    };
    let mut c = text_content("x");
    c.body = Body::ChannelAdmin {
        grant: grant.clone(),
    };
    assert_eq!(Content::decode(&c.encode()).unwrap(), c);
    // The seed and token never show in a debug print.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("3, 3") && !shown.contains("4, 4"),
        "{shown}"
    );
    // An older build shows it as unsupported: the kind number is 14.
    assert_eq!(c.encode()[25..27], [0, 14]);
    for bad in [
        ChannelGrant {
            post_token: vec![4; MAX_GRANT_TOKEN_LEN + 1],
            ..grant.clone()
        },
        ChannelGrant {
            descriptor: vec![1; MAX_GRANT_DESCRIPTOR_LEN + 1],
            ..grant.clone()
        },
        ChannelGrant {
            link: "l".repeat(MAX_GRANT_LINK_LEN + 1),
            ..grant.clone()
        },
    ] {
        c.body = Body::ChannelAdmin { grant: bad };
        assert!(Content::decode(&c.encode()).is_err());
    }
}
