//! Registers a throwaway account on a running server and prints its device's
//! bearer token on stdout. CI uses it to give schemathesis a valid token:
//!
//! ```text
//! cargo run -p hush-server --example register_test_account -- http://127.0.0.1:7780 st-user
//! ```
//!
//! So that the account's directory entry, profile and KeyPackage claims have
//! something to answer with, the device also uploads a (random) profile and a
//! last-resort KeyPackage for each suite. The account and device keys are
//! random and thrown away: only the token is useful afterwards.

use anyhow::{Context as _, bail};
use hush_proto::{
    AccountKey, Device, DeviceCertificate, DeviceId, DeviceSigningKey, Suite, Timestamp, Username,
};
use hush_wire::Bytes;
use hush_wire::api::{NewDeviceBody, RegisterRequest, RegisterResponse, UploadKeyPackagesRequest};
use rand::RngCore as _;

const USAGE: &str = "usage: register_test_account SERVER_URL USERNAME";

/// Fails with the response's status and body unless it has `expected` status.
async fn expect(
    resp: reqwest::Response,
    expected: u16,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.as_u16() != expected {
        let body = resp.text().await.unwrap_or_default();
        bail!("{what} refused: {status}: {body}");
    }
    Ok(resp)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(server), Some(name), None) = (args.next(), args.next(), args.next()) else {
        bail!(USAGE);
    };
    let server = server.trim_end_matches('/');
    let username = Username::new(&name).context("invalid username")?;

    let mut rng = rand::rngs::OsRng;
    let account = AccountKey::generate(&mut rng).context("account key")?;
    let device_key = DeviceSigningKey::generate(&mut rng).context("device key")?;
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_millis(),
    )
    .context("clock out of range")?;
    let certificate =
        DeviceCertificate::issue(&account, &username, DeviceId(1), &device_key, now_ms)
            .context("device certificate")?;
    let http = reqwest::Client::new();

    let resp = http
        .post(format!("{server}/v1/accounts"))
        .json(&RegisterRequest {
            username: username.as_str().to_owned(),
            account_key: Bytes(account.public().as_bytes().to_vec()),
            device: NewDeviceBody {
                device_id: 1,
                certificate: Bytes(certificate.encode()),
            },
        })
        .send()
        .await
        .with_context(|| format!("POST {server}/v1/accounts"))?;
    let token = expect(resp, 201, "registration")
        .await?
        .json::<RegisterResponse>()
        .await
        .context("registration response")?
        .token;

    let mut profile = vec![0u8; 64];
    rng.fill_bytes(&mut profile);
    let resp = http
        .put(format!("{server}/v1/profile"))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(profile)
        .send()
        .await
        .with_context(|| format!("PUT {server}/v1/profile"))?;
    expect(resp, 204, "profile upload").await?;

    let device = Device::new(certificate, &device_key).context("device")?;
    for suite in Suite::ALL {
        let kp = device
            .generate_key_package(suite, true, Timestamp::from_millis(now_ms))
            .context("KeyPackage")?;
        let resp = http
            .put(format!("{server}/v1/key-packages"))
            .bearer_auth(&token)
            .json(&UploadKeyPackagesRequest {
                suite: suite.cipher_suite().raw_value(),
                key_packages: Vec::new(),
                last_resort: Some(Bytes(kp.message)),
            })
            .send()
            .await
            .with_context(|| format!("PUT {server}/v1/key-packages"))?;
        expect(resp, 204, "KeyPackage upload").await?;
    }

    println!("{token}");
    Ok(())
}
