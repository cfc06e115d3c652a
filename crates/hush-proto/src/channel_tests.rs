use rand_core::OsRng;

use super::*;

fn setup() -> (ChannelSecret, AccountKey, Descriptor) {
    let secret = ChannelSecret::generate(&mut OsRng);
    let owner = AccountKey::generate(&mut OsRng).unwrap();
    let d = Descriptor::new(
        &secret.channel_id(),
        &owner,
        "news",
        0,
        new_key(&mut OsRng),
        vec![owner.public()],
    )
    .unwrap();
    (secret, owner, d)
}

#[test]
fn a_link_round_trips_and_is_told_from_an_invite() {
    let (secret, owner, _) = setup();
    let link = ChannelLink {
        server: "https://hush.example".into(),
        secret,
        owner: owner.public(),
    };
    let text = link.to_link();
    assert!(ChannelLink::is_channel_link(&text));
    assert!(!ChannelLink::is_channel_link(
        "https://hush.example/join#00"
    ));
    assert_eq!(ChannelLink::parse(&text).unwrap(), link);
    assert!(ChannelLink::parse(&text[..text.len() - 1]).is_err());
    assert!(ChannelLink::parse("https://hush.example/join#00").is_err());
    // 128 bytes whose 64th falls inside a character: refused, no panic.
    let odd = format!("https://h/channel#{}é{}", "0".repeat(63), "0".repeat(63));
    assert!(ChannelLink::parse(&odd).is_err());
}

#[test]
fn a_descriptor_opens_only_with_the_secret_and_the_owner_key() {
    let (secret, owner, d) = setup();
    let sealed = secret.seal_descriptor(&d, &mut OsRng).unwrap();
    assert_eq!(secret.open_descriptor(&owner.public(), &sealed).unwrap(), d);
    let other = AccountKey::generate(&mut OsRng).unwrap();
    assert!(secret.open_descriptor(&other.public(), &sealed).is_err());
    let stranger = ChannelSecret::generate(&mut OsRng);
    assert!(stranger.open_descriptor(&owner.public(), &sealed).is_err());
    // A link holder re-sealing a descriptor signed by someone else is refused.
    let forged = Descriptor::new(
        &secret.channel_id(),
        &other,
        "news",
        1,
        [9; 32],
        vec![other.public()],
    )
    .unwrap();
    let sealed = secret.seal_descriptor(&forged, &mut OsRng).unwrap();
    assert!(secret.open_descriptor(&owner.public(), &sealed).is_err());
}

#[test]
fn a_post_opens_for_subscribers_and_only_from_admins() {
    let (secret, owner, d) = setup();
    let id = secret.channel_id();
    let body = PostBody::Content(b"hello".to_vec());
    let sealed = Post::seal(&id, 0, &d.key, &owner, body.clone(), 5, &mut OsRng).unwrap();
    assert_eq!(Post::epoch_of(&sealed).unwrap(), 0);
    let post = Post::open(&id, &d.key, &d.admins, &sealed).unwrap();
    assert_eq!(post.body, body);
    assert_eq!(post.signer, owner.public());
    // A subscriber holds the key but is no admin: its post is refused.
    let subscriber = AccountKey::generate(&mut OsRng).unwrap();
    let fake = Post::seal(&id, 0, &d.key, &subscriber, body.clone(), 5, &mut OsRng).unwrap();
    assert!(Post::open(&id, &d.key, &d.admins, &fake).is_err());
    // Altered bytes, another channel or another epoch: refused.
    let mut altered = sealed.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(Post::open(&id, &d.key, &d.admins, &altered).is_err());
    assert!(Post::open(&[1; 32], &d.key, &d.admins, &sealed).is_err());
    let mut relabelled = sealed.clone();
    relabelled[4] = 1;
    assert!(Post::open(&id, &d.key, &d.admins, &relabelled).is_err());
}

#[test]
fn decoders_refuse_garbage() {
    let (_, owner, d) = setup();
    assert_eq!(Descriptor::decode(&d.encode()).unwrap(), d);
    for n in 0..d.encode().len() {
        assert!(Descriptor::decode(&d.encode()[..n]).is_err());
    }
    assert!(Post::decode(&[0; 200]).is_err());
    let _ = owner;
}
