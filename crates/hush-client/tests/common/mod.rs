//! An account driven by hand with `hush-proto` and raw requests, to play a
//! member or stranger who does what the `hush` client never would: reuse a
//! group id, re-post an old Welcome, certify a leaf under a key it made.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hush_client::linking::LinkRequest;
use hush_client::transport::Transport;
use hush_client::{Client, ConnectOptions, Event, HistoryScope};
use hush_proto::{
    AccountKey, Device, DeviceCertificate, DeviceId, DeviceSigningKey, Suite, Timestamp, Username,
};
use hush_testkit::TestServer;
use hush_wire::api::{
    ClaimResponse, NewDeviceBody, RegisterRequest, RegisterResponse, SendRequest, SendResponse,
    UploadKeyPackagesRequest,
};
use hush_wire::ws::{ClientFrame, ServerFrame};
use hush_wire::{Bytes, DeviceAddress};
use reqwest::Method;
use tokio_tungstenite::tungstenite::Message;

pub const PASS: &str = "correct horse battery staple";

pub async fn user(server: &TestServer, root: &Path, name: &str) -> Client {
    Client::register(&root.join(name), PASS, &server.url(), name, None)
        .await
        .unwrap()
}

pub async fn sync(c: &mut Client) -> Vec<Event> {
    c.sync(Duration::ZERO, |_| {}).await.unwrap()
}

pub fn security_alarms(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::SecurityAlarm { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

pub fn joined(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Joined { .. }))
        .count()
}

pub fn now() -> Timestamp {
    Timestamp::from_millis(hush_client::client::now_ms())
}

/// A device whose certificate says `username`/`device_id`, under an
/// account key made here (not the one the directory holds for it, if any).
pub fn forge(username: &str, device_id: u32) -> Device {
    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).unwrap();
    let key = DeviceSigningKey::generate(&mut rng).unwrap();
    let user = Username::new(username).unwrap();
    let cert = DeviceCertificate::issue(
        &account,
        &user,
        DeviceId(device_id),
        &key,
        hush_client::client::now_ms(),
    )
    .unwrap();
    Device::new(cert, &key).unwrap()
}

/// A registered account (directory and all) whose one device is driven
/// by the test.
pub struct Raw {
    pub name: String,
    pub device: Device,
    /// The device's signing key (for what it signs outside MLS: receipts).
    pub key: DeviceSigningKey,
    /// Opens what the server seals to this device.
    open: hush_proto::sealed::OpenKey,
    transport: Transport,
    last_seq: u64,
}

impl Raw {
    /// The device's authenticated connection to the server.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    pub async fn register(server: &TestServer, name: &str) -> Raw {
        let mut rng = rand::rngs::OsRng;
        let account = AccountKey::generate(&mut rng).unwrap();
        let key = DeviceSigningKey::generate(&mut rng).unwrap();
        let user = Username::new(name).unwrap();
        let cert = DeviceCertificate::issue(
            &account,
            &user,
            DeviceId(1),
            &key,
            hush_client::client::now_ms(),
        )
        .unwrap();
        let transport = Transport::new(&server.url(), None).unwrap();
        let resp: RegisterResponse = transport
            .json(
                Method::POST,
                "/v1/accounts",
                Some(&RegisterRequest {
                    username: name.into(),
                    account_key: Bytes(account.public().as_bytes().to_vec()),
                    device: NewDeviceBody {
                        device_id: 1,
                        certificate: Bytes(cert.encode()),
                    },
                }),
            )
            .await
            .unwrap();
        let raw = Raw {
            name: name.into(),
            device: Device::new(cert, &key).unwrap(),
            open: hush_proto::sealed::OpenKey::of(&key).unwrap(),
            key,
            transport: transport.with_token(resp.token),
            last_seq: 0,
        };
        raw.upload_key_packages(3).await;
        raw
    }

    /// Uploads `n` fresh KeyPackages (no last-resort one).
    pub async fn upload_key_packages(&self, n: usize) {
        let raw = self;
        let kps = (0..n)
            .map(|_| {
                Bytes(
                    raw.device
                        .generate_key_package(Suite::Hybrid, false, now())
                        .unwrap()
                        .message,
                )
            })
            .collect();
        raw.transport
            .call(
                Method::PUT,
                "/v1/key-packages",
                Some(&UploadKeyPackagesRequest {
                    suite: Suite::Hybrid.cipher_suite().raw_value(),
                    key_packages: kps,
                    last_resort: None,
                }),
            )
            .await
            .unwrap();
    }

    /// Claims a KeyPackage of every device of `username`, as any account may.
    pub async fn claim(&self, username: &str) -> Vec<Vec<u8>> {
        let resp: ClaimResponse = self
            .transport
            .json::<(), _>(
                Method::POST,
                &format!(
                    "/v1/accounts/{username}/key-packages/claim?suite={}",
                    Suite::Hybrid.cipher_suite().raw_value()
                ),
                None,
            )
            .await
            .unwrap();
        resp.key_packages
            .into_iter()
            .map(|k| k.key_package.0)
            .collect()
    }

    /// Posts an application message with its franking commitment to
    /// device 1 of each of `to`.
    pub async fn post_message(&self, to: &[&str], out: hush_proto::Outgoing) {
        self.post_with(to, out.message, Some(Bytes(out.commitment.0.to_vec())))
            .await;
    }

    /// Posts `payload` to device 1 of each of `to`.
    pub async fn post(&self, to: &[&str], payload: Vec<u8>) {
        self.post_with(to, payload, None).await;
    }

    async fn post_with(&self, to: &[&str], payload: Vec<u8>, franking: Option<Bytes>) {
        let _: SendResponse = self
            .transport
            .json(
                Method::POST,
                "/v1/messages",
                Some(&SendRequest {
                    recipients: to
                        .iter()
                        .map(|u| DeviceAddress {
                            username: (*u).into(),
                            device_id: 1,
                        })
                        .collect(),
                    payload: Bytes(payload),
                    ephemeral: false,
                    commit: None,
                    franking_commitment: franking,
                }),
            )
            .await
            .unwrap();
    }

    /// Creates an attachment of `size` bytes; returns its id.
    pub async fn reserve(&self, size: u64) -> String {
        let created: hush_wire::api::CreateAttachmentResponse = self
            .transport
            .json(
                Method::POST,
                "/v1/attachments",
                Some(&hush_wire::api::CreateAttachmentRequest { size }),
            )
            .await
            .unwrap();
        created.id
    }

    /// Uploads the whole of attachment `id`.
    pub async fn upload(&self, id: &str, bytes: &[u8]) {
        self.transport
            .raw(
                Method::PATCH,
                &format!("/v1/attachments/{id}"),
                &[("upload-offset", "0".to_owned())],
                Some(bytes.to_vec()),
            )
            .await
            .unwrap();
    }

    /// The MLS message in what the server delivered: sealed envelopes are
    /// opened as the client does; one queued before sealing comes as it is.
    fn unseal(&self, payload: Vec<u8>) -> Vec<u8> {
        if !hush_proto::sealed::is_sealed(&payload) {
            return payload;
        }
        hush_proto::sealed::open_envelope(&self.open, &payload)
            .unwrap()
            .message
    }

    /// Everything waiting in this device's queue (acknowledged).
    pub async fn receive(&mut self) -> Vec<Vec<u8>> {
        let mut ws = self.transport.websocket().await.unwrap();
        let mut out = Vec::new();
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .expect("the server drains the queue in time");
            let Some(Ok(Message::Binary(bytes))) = next else {
                continue;
            };
            let envelopes = match ServerFrame::decode(&bytes).unwrap() {
                ServerFrame::Envelope(env) => vec![env],
                ServerFrame::Envelopes(envs) => envs,
                ServerFrame::Drained => break,
                _ => continue,
            };
            let seqs = envelopes.iter().map(|e| e.seq).collect();
            for env in envelopes {
                if env.seq > self.last_seq {
                    self.last_seq = env.seq;
                    out.push(self.unseal(env.payload));
                }
            }
            ws.send(Message::Binary(ClientFrame::Ack(seqs).encode().into()))
                .await
                .unwrap();
        }
        let _ = ws.close(None).await;
        out
    }
}

/// A new device of `existing`'s account in `dir`, linked and (with
/// `finish`) added to `existing`'s conversations by it.
pub async fn link(existing: &mut Client, server: &TestServer, dir: &Path, finish: bool) -> Client {
    let url = server.url();
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    // Boxed: the two futures together are too big for a test thread's
    // stack in a debug build.
    let new = Box::pin(Client::link(
        dir,
        PASS,
        LinkRequest {
            server: &url,
            fingerprint: None,
            name: Some("laptop"),
            timeout: Duration::from_secs(30),
            options: ConnectOptions::default(),
        },
        move |code| {
            let _ = tx.send(code.to_owned());
        },
    ));
    let approve = Box::pin(async {
        let code = rx.await.unwrap();
        if finish {
            existing
                .link_device(&code, Duration::from_secs(30))
                .await
                .map(|_| ())
        } else {
            // The new device is linked and has its history, but this
            // device adds it nowhere: the members' clients must.
            let id = existing.approve_link(&code).await?;
            existing
                .hand_over_link(id, Duration::from_secs(30), HistoryScope::All, &mut |_| {})
                .await
        }
    });
    let (new, approved) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(new, approve)
    })
    .await
    .expect("linking timed out");
    approved.unwrap();
    new.unwrap()
}
