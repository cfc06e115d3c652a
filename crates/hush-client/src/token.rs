//! Rotating the device's bearer token.

use hush_wire::api::RotateTokenResponse;
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;
use crate::local::LocalStore;

impl Client {
    /// Asks the server for a new bearer token for this device and keeps it;
    /// the old token is refused from then on, and connections opened with
    /// it are closed. Use it when the token may have leaked (a copied
    /// store, a log).
    ///
    /// The server replaces the token before it answers: if the answer is
    /// lost, the device is locked out (re-add it from another device). The
    /// new token is stored before anything else happens.
    pub async fn rotate_token(&mut self) -> Result<(), ClientError> {
        let resp: RotateTokenResponse = self
            .transport
            .json(Method::POST, "/v1/token/rotate", None::<&()>)
            .await?;
        LocalStore::set_meta(&self.store.conn, "token", resp.token.as_bytes())?;
        self.transport.set_token(resp.token);
        // The channel watch asks with the new token from now on.
        self.hand_channel_watch()
    }
}
