//! Profiles: this account's display name and avatar, sealed under a
//! profile key shared with contacts, and contacts' names and avatars read
//! from theirs (names synced to this account's other devices, decision
//! 0025; avatars are not stored, decision 0040).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use hush_proto::Body;
use hush_proto::self_sync::SyncOp;
use rand::RngCore;
use reqwest::Method;
use rusqlite::{OptionalExtension, params};

use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;

/// The largest avatar, in bytes: with base64 and the name it keeps the
/// sealed profile under the server's limit (`MAX_PROFILE_LEN`, 1 MiB).
pub const MAX_AVATAR_BYTES: usize = 512 * 1024;

/// The picture types an avatar may be (checked by their first bytes).
pub const AVATAR_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp"];

/// A profile as its owner sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The display name (none if the profile had no usable one).
    pub name: Option<String>,
    /// The avatar's bytes, if any; only ever one of [`AVATAR_TYPES`] or
    /// GIF ([`avatar_media_type`] says which): anything else a contact's
    /// profile carries is dropped.
    pub avatar: Option<Vec<u8>>,
}

impl Profile {
    /// The avatar's media type, if there is one.
    pub fn avatar_type(&self) -> Option<&'static str> {
        self.avatar.as_deref().and_then(avatar_media_type)
    }
}

/// The raster picture type `bytes` start like (PNG, JPEG, GIF or WebP),
/// from their signature alone: nothing here decodes a picture.
pub fn avatar_media_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Refuses an avatar that is too big or not a PNG, JPEG or WebP picture.
pub fn check_avatar(bytes: &[u8]) -> Result<&'static str, ClientError> {
    if bytes.is_empty() {
        return Err(ClientError::InvalidInput("the avatar is empty".into()));
    }
    if bytes.len() > MAX_AVATAR_BYTES {
        return Err(ClientError::InvalidInput(format!(
            "an avatar is at most {} KiB (this one is {} KiB)",
            MAX_AVATAR_BYTES / 1024,
            bytes.len().div_ceil(1024)
        )));
    }
    match avatar_media_type(bytes) {
        Some(t) if AVATAR_TYPES.contains(&t) => Ok(t),
        _ => Err(ClientError::InvalidInput(
            "an avatar is a PNG, JPEG or WebP picture".into(),
        )),
    }
}

impl Client {
    /// Sets the display name (and avatar), encrypted under the profile key,
    /// and shares the key with every 1:1 contact.
    pub async fn set_profile(
        &mut self,
        name: &str,
        avatar: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        if name.is_empty() || name.len() > 128 {
            return Err(ClientError::InvalidInput(
                "a display name is 1 to 128 bytes".into(),
            ));
        }
        if let Some(a) = &avatar {
            check_avatar(a)?;
        }
        let key = self.profile_key()?;
        let profile = serde_json::json!({
            "name": name,
            "avatar": avatar.map(|a| base64::engine::general_purpose::STANDARD.encode(a)),
        });
        let plain = serde_json::to_vec(&profile).map_err(|e| ClientError::Store(e.to_string()))?;
        let sealed = seal_profile(&key, &plain)?;
        self.transport
            .raw(Method::PUT, "/v1/profile", &[], Some(sealed))
            .await?;
        // The other devices of this account share the same key from now on.
        self.change_and_sync(vec![SyncOp::ProfileKey { key }], |tx| {
            LocalStore::set_meta(tx, "profile_shared", b"1")
        })?;
        let groups: Vec<Vec<u8>> = {
            let mut stmt = self.store.conn.prepare(
                "SELECT group_id FROM conversations WHERE active = 1 AND kind = 'direct'",
            )?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        for g in groups {
            self.send_control(&g, Body::ProfileKey { key }, None)
                .await?;
        }
        Ok(())
    }

    /// Shares the profile key in a new 1:1 chat, when a profile is set.
    pub(crate) async fn share_profile_key(&mut self, group_id: &[u8]) -> Result<(), ClientError> {
        if self.store.meta("profile_shared")?.is_none() {
            return Ok(());
        }
        let kind: Option<String> = self.conv_by_group_id(group_id)?.map(|r| r.kind);
        if kind.as_deref() != Some("direct") {
            return Ok(());
        }
        let key = self.profile_key()?;
        self.send_control(group_id, Body::ProfileKey { key }, None)
            .await
    }

    /// Fetches and opens `user`'s profile with the key they shared; stores
    /// the display name.
    pub async fn refresh_profile(&mut self, user: &str) -> Result<Option<String>, ClientError> {
        Ok(self.contact_profile(user).await?.and_then(|p| p.name))
    }

    /// This account's own profile as the server holds it (`None` if it was
    /// never set, or not from a device that shares its key).
    pub async fn own_profile(&mut self) -> Result<Option<Profile>, ClientError> {
        let Some(key) = self
            .store
            .meta("profile_key")?
            .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        else {
            return Ok(None);
        };
        let me = self.username().to_owned();
        self.fetch_profile(&me, &key).await
    }

    /// Fetches and opens `user`'s profile (name and avatar) with the key
    /// they shared, and stores the display name (synced to this account's
    /// other devices when it changed). `None` when they shared no key or
    /// have no profile. The avatar is not stored: a front end keeps it as
    /// long as it wants.
    pub async fn contact_profile(&mut self, user: &str) -> Result<Option<Profile>, ClientError> {
        let key: Option<Vec<u8>> = self
            .store
            .conn
            .query_row(
                "SELECT profile_key FROM contacts WHERE username = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        let Some(key) = key.and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok()) else {
            return Ok(None);
        };
        let Some(profile) = self.fetch_profile(user, &key).await? else {
            return Ok(None);
        };
        self.keep_contact_name(user, profile.name.clone())?;
        Ok(Some(profile))
    }

    /// `GET /v1/accounts/{user}/profile`, opened with `key`.
    async fn fetch_profile(
        &mut self,
        user: &str,
        key: &[u8; 32],
    ) -> Result<Option<Profile>, ClientError> {
        let resp = match self
            .transport
            .raw(
                Method::GET,
                &format!("/v1/accounts/{user}/profile"),
                &[],
                None,
            )
            .await
        {
            Ok(r) => r,
            Err(e) if e.code() == Some(hush_wire::ErrorCode::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sealed = resp.bytes().await?;
        Ok(Some(parse_profile(&open_profile(key, &sealed)?)?))
    }

    /// Stores a contact's display name if it changed.
    fn keep_contact_name(&mut self, user: &str, name: Option<String>) -> Result<(), ClientError> {
        let held: Option<String> = self
            .store
            .conn
            .query_row(
                "SELECT display_name FROM contacts WHERE username = ?1",
                params![user],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        if held != name
            && let Ok(username) = hush_proto::Username::new(user)
        {
            // The other devices of this account show the same name
            // (decision 0025, last writer wins).
            let op = SyncOp::ContactName {
                user: username,
                name: name.clone().unwrap_or_default(),
            };
            self.change_and_sync(vec![op], |tx| {
                tx.execute(
                    "UPDATE contacts SET display_name = ?2 WHERE username = ?1",
                    params![user, name],
                )?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// A profile's plaintext: a name of at most `MAX_CONTACT_NAME` bytes, and
/// an avatar kept only if it is a raster picture of at most
/// [`MAX_AVATAR_BYTES`] (a contact's modified client may send anything).
fn parse_profile(plain: &[u8]) -> Result<Profile, ClientError> {
    let v: serde_json::Value = serde_json::from_slice(plain)
        .map_err(|_| ClientError::Store("profile is malformed".into()))?;
    let name = v["name"]
        .as_str()
        .filter(|n| n.len() <= hush_proto::self_sync::MAX_CONTACT_NAME)
        .map(str::to_owned);
    let avatar = v["avatar"]
        .as_str()
        .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
        .filter(|a| a.len() <= MAX_AVATAR_BYTES && avatar_media_type(a).is_some());
    Ok(Profile { name, avatar })
}

fn seal_profile(key: &[u8; 32], plain: &[u8]) -> Result<Vec<u8>, ClientError> {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| ClientError::Store("key".into()))?,
    );
    let mut buf = plain.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(b"hush profile v1"),
        &mut buf,
    )
    .map_err(|_| ClientError::Store("cannot seal the profile".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open_profile(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, ClientError> {
    let (nonce, ct) = sealed
        .split_at_checked(12)
        .ok_or_else(|| ClientError::Store("profile is truncated".into()))?;
    let nonce = <[u8; 12]>::try_from(nonce).map_err(|_| ClientError::Store("profile".into()))?;
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| ClientError::Store("key".into()))?,
    );
    let mut buf = ct.to_vec();
    let plain = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(b"hush profile v1"),
            &mut buf,
        )
        .map_err(|_| ClientError::Store("the profile does not open with the shared key".into()))?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n....";
    const JPEG: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10];
    const WEBP: &[u8] = b"RIFF\x10\0\0\0WEBPVP8 ";

    #[test]
    fn avatars_are_known_by_their_signature() {
        assert_eq!(avatar_media_type(PNG), Some("image/png"));
        assert_eq!(avatar_media_type(JPEG), Some("image/jpeg"));
        assert_eq!(avatar_media_type(WEBP), Some("image/webp"));
        assert_eq!(avatar_media_type(b"GIF89a..."), Some("image/gif"));
        for other in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'/>"[..],
            b"<html><script>",
            b"RIFF\x10\0\0\0WAVE",
            b"RIFF",
            b"",
        ] {
            assert_eq!(avatar_media_type(other), None, "{other:?}");
        }
    }

    #[test]
    fn an_avatar_is_a_small_png_jpeg_or_webp() {
        assert_eq!(check_avatar(PNG).unwrap(), "image/png");
        assert_eq!(check_avatar(WEBP).unwrap(), "image/webp");
        let gif = check_avatar(b"GIF89a...").unwrap_err().to_string();
        assert!(gif.contains("PNG, JPEG or WebP"), "{gif}");
        assert!(check_avatar(b"").is_err());
        let mut big = PNG.to_vec();
        big.resize(MAX_AVATAR_BYTES + 1, 0);
        let err = check_avatar(&big).unwrap_err().to_string();
        assert!(err.contains("at most 512 KiB"), "{err}");
        big.truncate(MAX_AVATAR_BYTES);
        assert!(check_avatar(&big).is_ok());
    }

    /// What a contact's profile carries beyond a picture is dropped, and
    /// a malformed one is an error, not a panic.
    #[test]
    fn a_contacts_avatar_is_kept_only_if_it_is_a_picture() {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let p = parse_profile(
            serde_json::json!({"name": "Bob", "avatar": b64(PNG)})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(p.name.as_deref(), Some("Bob"));
        assert_eq!(p.avatar_type(), Some("image/png"));
        for avatar in [
            serde_json::json!(b64(b"<svg onload=alert(1)>")),
            serde_json::json!("not base64!"),
            serde_json::json!(null),
            serde_json::json!(42),
        ] {
            let p = parse_profile(
                serde_json::json!({"name": "Bob", "avatar": avatar})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            assert_eq!(p.avatar, None);
        }
        assert!(parse_profile(b"\xff{").is_err());
    }

    #[test]
    fn a_profile_opens_only_with_its_key() {
        let key = [7u8; 32];
        let sealed = seal_profile(&key, b"{}").unwrap();
        assert_eq!(open_profile(&key, &sealed).unwrap(), b"{}");
        assert!(open_profile(&[8u8; 32], &sealed).is_err());
        assert!(open_profile(&key, &sealed[..5]).is_err());
    }
}
