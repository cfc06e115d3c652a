//! Backups stored on the server (decision 0035) through the API of a real
//! server on a loopback port, from the attacker's side too: a stranger's
//! account cannot overwrite, take over or delete another account's backup;
//! downloads need the locator and are rate limited; sizes are bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use hush_server::app::Settings;
use hush_wire::api::{BACKUP_LOCATOR, BackupStatus};

fn locator(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

async fn put(s: &TestServer, token: Option<&str>, loc: &str, body: &[u8]) -> reqwest::Response {
    let mut req = s
        .http
        .put(s.url("/v1/backup"))
        .header(BACKUP_LOCATOR, loc)
        .body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn download(s: &TestServer, loc: &str) -> reqwest::Response {
    s.http
        .get(s.url(&format!("/v1/backups/{loc}")))
        .send()
        .await
        .unwrap()
}

async fn delete(s: &TestServer, token: &str) -> reqwest::Response {
    s.http
        .delete(s.url("/v1/backup"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_backup_per_account_that_only_its_devices_change() {
    let s = TestServer::with_settings(Settings {
        max_backup_size: 1000,
        ..Settings::default()
    })
    .await;
    let mut alice = s.register("alice", 1).await;
    let mallory = s.register("mallory", 2).await;
    let (a1, m) = (
        alice.devices[0].token.clone(),
        mallory.devices[0].token.clone(),
    );
    assert_eq!(
        put(&s, Some(&a1), &locator(1), b"sealed one")
            .await
            .status(),
        204
    );
    // Anyone with the locator downloads it, without a token.
    let got = download(&s, &locator(1)).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"sealed one");
    let status: BackupStatus = s.get_as("/v1/backup", &a1).await.json().await.unwrap();
    assert_eq!(status.size, 10);

    // Mallory cannot store under alice's locator, nor delete her backup.
    expect_error(
        put(&s, Some(&m), &locator(1), b"evil").await,
        403,
        "forbidden",
    )
    .await;
    expect_error(delete(&s, &m).await, 404, "not_found").await;
    expect_error(s.get_as("/v1/backup", &m).await, 404, "not_found").await;
    let got = download(&s, &locator(1)).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"sealed one");
    // Her own backup goes to her own slot and leaves alice's alone.
    assert_eq!(put(&s, Some(&m), &locator(9), b"mine").await.status(), 204);
    let got = download(&s, &locator(1)).await;
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"sealed one");

    // Without a token, nothing is stored.
    expect_error(put(&s, None, &locator(3), b"x").await, 401, "unauthorized").await;
    // Bad locators and sizes change nothing.
    expect_error(put(&s, Some(&a1), "abc", b"x").await, 400, "bad_request").await;
    expect_error(put(&s, Some(&a1), &locator(3), b"").await, 413, "too_large").await;
    expect_error(
        put(&s, Some(&a1), &locator(3), &[0; 1001]).await,
        413,
        "too_large",
    )
    .await;
    assert_eq!(download(&s, &locator(1)).await.status(), 200);
    expect_error(download(&s, &locator(3)).await, 404, "not_found").await;
    expect_error(download(&s, "not-a-locator").await, 404, "not_found").await;

    // Another device of alice's replaces it: the old locator finds nothing.
    s.add_device(&mut alice, 2, 3).await;
    let a2 = alice.devices[1].token.clone();
    assert_eq!(
        put(&s, Some(&a2), &locator(2), &[7; 1000]).await.status(),
        204
    );
    expect_error(download(&s, &locator(1)).await, 404, "not_found").await;
    assert_eq!(
        download(&s, &locator(2)).await.bytes().await.unwrap().len(),
        1000
    );
    // And deletes it.
    assert_eq!(delete(&s, &a1).await.status(), 204);
    expect_error(download(&s, &locator(2)).await, 404, "not_found").await;
    expect_error(delete(&s, &a2).await, 404, "not_found").await;
    s.stop().await;
}

#[tokio::test]
async fn downloads_by_locator_are_rate_limited_per_network() {
    let s = TestServer::start().await;
    let mut limited = false;
    for n in 0..60u8 {
        let resp = download(&s, &locator(n)).await;
        match resp.status().as_u16() {
            404 => {}
            429 => {
                limited = true;
                break;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(limited, "60 guesses in a row were all answered");
    s.stop().await;
}

/// A blob is deleted before it expires only with the delete token its
/// uploader chose (a link's history, by the new device that fetched it);
/// the server keeps only the token's hash, which names nobody.
#[tokio::test]
async fn only_the_delete_token_deletes_a_blob_early() {
    use hush_wire::api::{
        CreateAttachmentRequest, CreateAttachmentResponse, DELETE_TOKEN, DELETE_TOKEN_HASH,
    };
    let s = TestServer::start().await;
    let alice = s.register("alice", 1).await;
    let mallory = s.register("mallory", 2).await;
    let (a, m) = (
        alice.devices[0].token.clone(),
        mallory.devices[0].token.clone(),
    );
    let token = [9u8; 32];
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &token);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let create = |with: Option<String>| {
        let mut req = s
            .http
            .post(s.url("/v1/attachments"))
            .bearer_auth(&a)
            .json(&CreateAttachmentRequest { size: 3 });
        if let Some(h) = with {
            req = req.header(DELETE_TOKEN_HASH, h);
        }
        async move { req.send().await.unwrap() }
    };
    expect_error(create(Some("xyz".into())).await, 400, "bad_request").await;
    let created: CreateAttachmentResponse =
        create(Some(hex(hash.as_ref()))).await.json().await.unwrap();
    let path = format!("/v1/attachments/{}", created.id);
    let resp = s
        .http
        .patch(s.url(&path))
        .bearer_auth(&a)
        .header("upload-offset", "0")
        .body(b"abc".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let delete = |who: &str, t: Option<String>| {
        let mut req = s.http.delete(s.url(&path)).bearer_auth(who);
        if let Some(t) = t {
            req = req.header(DELETE_TOKEN, t);
        }
        async move { req.send().await.unwrap() }
    };
    // No token, a wrong one, or the hash itself: nothing is deleted.
    expect_error(delete(&m, None).await, 400, "bad_request").await;
    expect_error(delete(&m, Some(hex(&[8; 32]))).await, 404, "not_found").await;
    expect_error(delete(&a, Some(hex(hash.as_ref()))).await, 404, "not_found").await;
    assert_eq!(
        s.get_as(&path, &m).await.bytes().await.unwrap().as_ref(),
        b"abc"
    );
    // The token deletes it, whoever sends it.
    assert_eq!(delete(&m, Some(hex(&token))).await.status(), 204);
    expect_error(s.get_as(&path, &a).await, 404, "not_found").await;
    // A blob made without a delete token only expires.
    let plain: CreateAttachmentResponse = create(None).await.json().await.unwrap();
    let resp = s
        .http
        .delete(s.url(&format!("/v1/attachments/{}", plain.id)))
        .bearer_auth(&a)
        .header(DELETE_TOKEN, hex(&token))
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_found").await;
    s.stop().await;
}
