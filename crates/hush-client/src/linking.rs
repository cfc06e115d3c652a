//! The new device's side of a link (decision 0023): make a device key and a
//! one-time code, wait until a device of the account registers it, take the
//! account from the link channel, and answer with KeyPackages so the
//! approving device can add it to every conversation.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hush_proto::device_link::{
    FrameKind, LinkCode, LinkKeys, LinkReady, LinkWelcome, is_link_frame, open_frame, seal_frame,
};
use hush_proto::{Device, DeviceSigningKey, Suite};
use hush_wire::api::{KeyPackageCountResponse, SendRequest};
use hush_wire::ws::{ClientFrame, Envelope, ServerFrame};
use hush_wire::{Bytes, DeviceAddress, ErrorCode};
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Client, now};
use crate::devices::note_device;
use crate::error::ClientError;
use crate::history::Progress;
use crate::local::LocalStore;
use crate::transport::{ConnectOptions, Transport, normalize_fingerprint};

/// How often the new device asks whether it was registered yet.
const POLL: Duration = Duration::from_secs(1);

/// What `hush link` was asked for.
#[derive(Debug, Clone)]
pub struct LinkRequest<'a> {
    /// The account's server.
    pub server: &'a str,
    /// Its certificate's fingerprint, for a self-signed `https://` server.
    pub fingerprint: Option<&'a str>,
    /// This device's name.
    pub name: Option<&'a str>,
    /// How long to wait for the approval.
    pub timeout: Duration,
    /// How the server may be reached.
    pub options: ConnectOptions,
}

fn timed_out(timeout: Duration) -> ClientError {
    ClientError::Network(format!(
        "no device of the account approved this link within {} s; nothing was linked \
         (run `hush link` again for a new code)",
        timeout.as_secs()
    ))
}

pub(crate) fn tampered(what: &str) -> ClientError {
    ClientError::InvalidInput(format!(
        "SECURITY: {what}. The server altered the link exchange; nothing was linked"
    ))
}

impl Client {
    /// Links this new device to an existing account: creates the store in
    /// `dir`, passes the link code to `on_code` (to show), and waits until
    /// another device of the account approves it (`hush devices link CODE`).
    /// On failure nothing is left behind in `dir`.
    pub async fn link(
        dir: &Path,
        passphrase: &str,
        req: LinkRequest<'_>,
        on_code: impl FnOnce(&str),
    ) -> Result<Client, ClientError> {
        Self::link_with_progress(dir, passphrase, req, on_code, |_| {}).await
    }

    /// [`Client::link`], reporting the history transfer (decision 0026)
    /// to `on_progress`. The history is imported before this returns; an
    /// archive that does not open whole fails the link.
    pub async fn link_with_progress(
        dir: &Path,
        passphrase: &str,
        req: LinkRequest<'_>,
        on_code: impl FnOnce(&str),
        mut on_progress: impl FnMut(Progress),
    ) -> Result<Client, ClientError> {
        let name = req.name.map(str::trim).unwrap_or_default();
        if name.len() > hush_proto::device_link::MAX_DEVICE_NAME {
            return Err(ClientError::InvalidInput(
                "a device name is at most 64 bytes".into(),
            ));
        }
        let transport =
            Transport::with_options(req.server, req.fingerprint.map(str::to_owned), req.options)?;
        let store = LocalStore::create(dir, passphrase)?;
        let result = Self::link_in(store, dir, transport, &req, on_code, &mut on_progress).await;
        if result.is_err() {
            for file in ["keyfile.json", "hush.db", "hush.db-wal", "hush.db-shm"] {
                let _ = std::fs::remove_file(dir.join(file));
            }
        }
        result
    }

    async fn link_in(
        store: LocalStore,
        dir: &Path,
        transport: Transport,
        req: &LinkRequest<'_>,
        on_code: impl FnOnce(&str),
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<Client, ClientError> {
        let key = DeviceSigningKey::generate(&mut rand::rngs::OsRng)?;
        let code = LinkCode::generate(key.public(), &mut rand::rngs::OsRng);
        let keys = code.keys();
        on_code(&code.encode());
        let deadline = Instant::now() + req.timeout;
        let transport = transport.with_token(keys.token_string().to_string());
        wait_registered(&transport, deadline, req.timeout).await?;
        let open_key = hush_proto::sealed::OpenKey::of(&key)?;
        let (seq, plain) = receive_frame(
            &transport,
            &open_key,
            &keys.to_new,
            FrameKind::Welcome,
            deadline,
            req.timeout,
        )
        .await?;
        let mut welcome =
            LinkWelcome::decode(&plain).map_err(|_| tampered("the link message is malformed"))?;
        let account = welcome
            .verify(&key.public())
            .map_err(|_| tampered("the account handed over does not certify this device's key"))?;
        let cert = welcome.certificate.clone();
        {
            let conn = &store.conn;
            LocalStore::set_meta(conn, "server", transport.base().as_bytes())?;
            if let Some(fp) = req.fingerprint {
                LocalStore::set_meta(conn, "fingerprint", normalize_fingerprint(fp).as_bytes())?;
            }
            LocalStore::set_meta(conn, "username", cert.username().as_str().as_bytes())?;
            let id = cert.device_id().0.to_string();
            LocalStore::set_meta(conn, "device_id", id.as_bytes())?;
            LocalStore::set_meta(conn, "token", keys.token_string().as_bytes())?;
            LocalStore::set_meta(conn, "account_seed", &*account.to_seed())?;
            LocalStore::set_meta(conn, "device_seed", &*key.to_seed())?;
            LocalStore::set_meta(conn, "certificate", &cert.encode())?;
            LocalStore::set_meta(conn, "last_seq", seq.to_string().as_bytes())?;
            LocalStore::set_meta(conn, "presence", b"contacts")?;
            LocalStore::set_meta(conn, "kt_signing_key", &welcome.kt_signing_key)?;
            LocalStore::set_meta(conn, "kt_vrf_key", &welcome.kt_vrf_key)?;
            for e in &welcome.roster {
                note_device(conn, &e.certificate, None, e.removed)?;
            }
            let name = req.name.map(str::trim).filter(|n| !n.is_empty());
            note_device(conn, &cert, name, false)?;
        }
        let device = Device::new(cert.clone(), &key)?;
        let mut client = Client::assemble(store, device, transport, account, dir);
        // The token the code derived is known to the approving device too:
        // replace it with one only this device knows.
        client.rotate_token().await?;
        let alarms = client.kt_monitor(true).await?;
        if let Some(a) = alarms.first() {
            return Err(ClientError::InvalidInput(a.clone()));
        }
        client.top_up_key_packages(true).await?;
        client
            .answer_link(&keys, &welcome, req.name.unwrap_or_default())
            .await?;
        if let Err(e) = client
            .receive_history(&keys, req.timeout, on_progress)
            .await
        {
            // The approving device is done and has added this device to the
            // account's conversations: take it off the server and out of the
            // directory (signed by the account key), so that nobody keeps a
            // device that never came up; members then remove it as departed
            // (decision 0035).
            let id = client.device_id;
            if let Err(undo) = client.unlink(id).await {
                tracing::warn!(error = %undo, "could not take the failed new device off the server");
            }
            return Err(e);
        }
        Ok(client)
    }

    /// Sends the approving device this device's name and one KeyPackage per
    /// conversation it will be added to.
    async fn answer_link(
        &mut self,
        keys: &LinkKeys,
        welcome: &LinkWelcome,
        name: &str,
    ) -> Result<(), ClientError> {
        let t = now();
        let mut key_packages = Vec::new();
        for raw in &welcome.wanted {
            let suite = Suite::ALL
                .into_iter()
                .find(|s| s.cipher_suite().raw_value() == *raw)
                .unwrap_or(Suite::Hybrid);
            key_packages.push(self.device.generate_key_package(suite, false, t)?.message);
        }
        self.persist(|_| Ok(()))?;
        let ready = LinkReady {
            name: name.trim().to_owned(),
            key_packages,
        };
        let frame = seal_frame(
            &keys.to_existing,
            FrameKind::Ready,
            0,
            &ready.encode(),
            &mut rand::rngs::OsRng,
        );
        self.transport
            .send_message(&SendRequest {
                recipients: vec![DeviceAddress {
                    username: self.username.to_string(),
                    device_id: welcome.approver,
                }],
                payload: Bytes(frame),
                ephemeral: false,
                commit: None,
                franking_commitment: None,
            })
            .await?;
        Ok(())
    }
}

/// Waits until the server accepts the token the code derived, that is until
/// a device of the account registered this one.
async fn wait_registered(
    transport: &Transport,
    deadline: Instant,
    timeout: Duration,
) -> Result<(), ClientError> {
    loop {
        match transport
            .json::<(), KeyPackageCountResponse>(Method::GET, "/v1/key-packages/count", None)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(ErrorCode::Unauthorized) => {
                if Instant::now() + POLL > deadline {
                    return Err(timed_out(timeout));
                }
                tokio::time::sleep(POLL).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads this device's queue until a link frame of kind `want` under `key`
/// arrives, acknowledges it and returns its sequence number and plaintext.
/// Other messages stay queued for the next sync; any link frame that does
/// not open with the code's key, or is of another kind, is the server's
/// doing.
pub(crate) async fn receive_frame(
    transport: &Transport,
    open_key: &hush_proto::sealed::OpenKey,
    key: &[u8; 32],
    want: FrameKind,
    deadline: Instant,
    timeout: Duration,
) -> Result<(u64, Vec<u8>), ClientError> {
    let mut ws = transport.websocket().await?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let next = tokio::time::timeout(left, ws.next())
            .await
            .map_err(|_| timed_out(timeout))?;
        let bytes = match next {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ClientError::Network(e.to_string())),
            None => {
                return Err(ClientError::Network(
                    "the server closed the connection".into(),
                ));
            }
        };
        let envelopes = match ServerFrame::decode(&bytes)
            .map_err(|e| ClientError::Network(format!("malformed frame from the server: {e}")))?
        {
            ServerFrame::Envelope(env) => vec![env],
            ServerFrame::Envelopes(envs) => envs,
            _ => continue,
        };
        for env in envelopes {
            if let Some(plain) = frame_in(open_key, key, want, &env)? {
                let ack = ClientFrame::Ack(vec![env.seq]).encode();
                ws.send(Message::Binary(ack.into()))
                    .await
                    .map_err(|e| ClientError::Network(e.to_string()))?;
                return Ok((env.seq, plain));
            }
        }
    }
}

/// The plaintext of the link frame in `env`, if it is one.
fn frame_in(
    open_key: &hush_proto::sealed::OpenKey,
    key: &[u8; 32],
    want: FrameKind,
    env: &Envelope,
) -> Result<Option<Vec<u8>>, ClientError> {
    let payload = if hush_proto::sealed::is_sealed(&env.payload) {
        hush_proto::sealed::open_envelope(open_key, &env.payload)?.message
    } else {
        env.payload.clone()
    };
    if !is_link_frame(&payload) {
        return Ok(None);
    }
    let frame = open_frame(key, &payload)
        .map_err(|_| tampered("a link message did not open with this code's key"))?;
    if frame.kind != want {
        return Err(tampered("a link message of the wrong kind arrived"));
    }
    Ok(Some(frame.plaintext.to_vec()))
}
