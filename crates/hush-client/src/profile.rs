//! Profiles: this account's display name and avatar, sealed under a
//! profile key shared with contacts, and contacts' names read from theirs
//! (synced to this account's other devices, decision 0025).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use hush_proto::Body;
use hush_proto::self_sync::SyncOp;
use rand::RngCore;
use reqwest::Method;
use rusqlite::{OptionalExtension, params};

use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;

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
        let key = self.profile_key()?;
        let profile = serde_json::json!({
            "name": name,
            "avatar": avatar.map(|a| { use base64::Engine as _; base64::engine::general_purpose::STANDARD.encode(a) }),
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
        let plain = open_profile(&key, &sealed)?;
        let v: serde_json::Value = serde_json::from_slice(&plain)
            .map_err(|_| ClientError::Store("profile is malformed".into()))?;
        let name = v["name"]
            .as_str()
            .filter(|n| n.len() <= hush_proto::self_sync::MAX_CONTACT_NAME)
            .map(str::to_owned);
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
        Ok(name)
    }
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
