//! A channel as its owner's device holds it (decision 0038), for the tests
//! that file one and post to it.

use hush_proto::AccountKey;
use hush_proto::channel::{ChannelSecret, Descriptor, Post, PostBody};

/// A channel as its owner's device holds it: the secret, the owner key, the
/// epoch key and the post token.
pub struct Channel {
    pub secret: ChannelSecret,
    pub owner: AccountKey,
    pub key: [u8; 32],
    pub token: [u8; 32],
}

impl Channel {
    pub fn new(seed: u64) -> Self {
        let mut r = super::rng(seed);
        Self {
            secret: ChannelSecret::generate(&mut r),
            owner: AccountKey::generate(&mut r).unwrap(),
            key: hush_proto::channel::new_key(&mut r),
            token: [seed as u8; 32],
        }
    }

    pub fn id(&self) -> String {
        self.secret
            .channel_id()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn descriptor(&self, name: &str) -> Vec<u8> {
        let d = Descriptor::new(
            &self.secret.channel_id(),
            &self.owner,
            name,
            0,
            self.key,
            vec![self.owner.public()],
        )
        .unwrap();
        self.secret.seal_descriptor(&d, &mut super::rng(9)).unwrap()
    }

    pub fn post(&self, text: &str) -> Vec<u8> {
        Post::seal(
            &self.secret.channel_id(),
            0,
            &self.key,
            &self.owner,
            PostBody::Content(text.as_bytes().to_vec()),
            super::now_ms(),
            &mut super::rng(super::now_ms() ^ text.len() as u64),
        )
        .unwrap()
    }

    /// What a subscriber reads in a fetched post.
    pub fn open(&self, sealed: &[u8]) -> Vec<u8> {
        let post = Post::open(
            &self.secret.channel_id(),
            &self.key,
            &[self.owner.public()],
            sealed,
        )
        .unwrap();
        match post.body {
            PostBody::Content(c) => c,
            other => panic!("not a content post: {other:?}"),
        }
    }
}
