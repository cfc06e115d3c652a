//! Re-adding an account's new devices (decision 0026): a device restored
//! from a backup (or linked while this device was not looking) is listed
//! in the key directory, certified by the account key this device already
//! knows, but is in none of the conversations. Any member may add it.

use std::collections::HashSet;

use hush_proto::{Suite, Username};

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// Adds `user`'s devices that the key directory lists, under the
    /// account key this device knows for them, to every conversation this
    /// device shares with `user` that lacks them. A changed account key is
    /// refused (that is a key change, see `hush verify`), as is a device
    /// the directory does not prove. Returns how many devices were added.
    pub async fn readd_devices(&mut self, user: &str) -> Result<usize, ClientError> {
        let who = Username::new(user).map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        self.check_not_blocked_verified(user)?;
        let (entry, changed, _) = self.lookup_verified(user).await?;
        if changed {
            return Err(ClientError::KeyChanged(user.to_owned()));
        }
        let listed: Vec<u32> = entry.devices.iter().map(|d| d.device_id).collect();
        let mut added = 0;
        for group_id in self.active_groups()? {
            let conv = self.conv(&group_id)?;
            let have: HashSet<u32> = conv
                .members()
                .iter()
                .filter(|c| c.username() == &who)
                .map(|c| c.device_id().0)
                .collect();
            if have.is_empty() && who != self.username {
                continue;
            }
            let missing: Vec<u32> = listed
                .iter()
                .copied()
                .filter(|id| !have.contains(id))
                .filter(|id| who != self.username || *id != self.device_id)
                .collect();
            if missing.is_empty() {
                continue;
            }
            let suite = self.conv(&group_id)?.suite().unwrap_or(Suite::Hybrid);
            let kps: Vec<Vec<u8>> = self
                .claim(user, suite)
                .await?
                .into_iter()
                .filter(|kp| {
                    hush_proto::inspect_key_package(kp)
                        .is_ok_and(|i| missing.contains(&i.certificate.device_id().0))
                })
                .collect();
            if kps.is_empty() {
                continue;
            }
            added += kps.len();
            self.add_in_batches(&group_id, &kps).await?;
        }
        Ok(added)
    }
}
