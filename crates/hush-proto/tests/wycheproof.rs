//! The primitives Hush configures against Wycheproof (C2SP/wycheproof,
//! `testvectors_v1/`, files in `tests/vectors/wycheproof/`, see the README
//! beside them). Through Hush's own MLS crypto provider where it exposes the
//! primitive (AEAD, HMAC, HKDF, Ed25519), else the library call Hush makes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use hush_proto::crypto::{HushSuite, XWING_CHACHA20POLY1305_SHA256_ED25519};
use ml_kem::{Decapsulate, KeyExport};
use mls_rs_core::crypto::{CipherSuite, CipherSuiteProvider, SignaturePublicKey};
use serde_json::Value;

fn file(name: &str) -> Value {
    let path = format!(
        "{}/tests/vectors/wycheproof/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Every test of every group, with its group; checks the file's own count.
fn tests(name: &str) -> Vec<(Value, Value)> {
    let f = file(name);
    let mut out = Vec::new();
    for g in f["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            out.push((g.clone(), t.clone()));
        }
    }
    assert_eq!(out.len() as u64, f["numberOfTests"].as_u64().unwrap());
    out
}

fn hex(t: &Value, field: &str) -> Vec<u8> {
    hex::decode(t[field].as_str().unwrap()).unwrap()
}

fn result(t: &Value) -> &str {
    t["result"].as_str().unwrap()
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap()
}

fn suite(cs: CipherSuite) -> HushSuite {
    HushSuite::new(cs).unwrap()
}

#[test]
fn ed25519_verify() {
    let cs = suite(CipherSuite::CURVE25519_AES128);
    for (g, t) in tests("ed25519_test.json") {
        let pk = SignaturePublicKey::from(hex(&g["publicKey"], "pk"));
        let ok = cs.verify(&pk, &hex(&t, "sig"), &hex(&t, "msg")).is_ok();
        assert_eq!(ok, result(&t) == "valid", "tcId {}", id(&t));
    }
}

#[test]
fn hmac_sha256() {
    let cs = suite(CipherSuite::CURVE25519_AES128);
    for (g, t) in tests("hmac_sha256_test.json") {
        let tag_len = g["tagSize"].as_u64().unwrap() as usize / 8;
        let mac = cs.mac(&hex(&t, "key"), &hex(&t, "msg")).unwrap();
        let ok = mac[..tag_len] == hex(&t, "tag")[..];
        assert_eq!(ok, result(&t) == "valid", "tcId {}", id(&t));
    }
}

#[test]
fn hkdf_sha256() {
    let cs = suite(CipherSuite::CURVE25519_AES128);
    for (_, t) in tests("hkdf_sha256_test.json") {
        let size = t["size"].as_u64().unwrap() as usize;
        let prk = cs.kdf_extract(&hex(&t, "salt"), &hex(&t, "ikm")).unwrap();
        let okm = cs.kdf_expand(&prk, &hex(&t, "info"), size);
        match result(&t) {
            "valid" => assert_eq!(*okm.unwrap(), hex(&t, "okm"), "tcId {}", id(&t)),
            // The invalid cases ask for more than 255 blocks.
            _ => assert!(okm.is_err(), "tcId {}", id(&t)),
        }
    }
}

/// One AEAD test: sealing gives the vector's ciphertext and tag, opening
/// gives the message back, and an invalid one never opens. Nonces other than
/// the 96 bits Hush uses must be refused.
fn aead_case(
    t: &Value,
    iv_bits: u64,
    seal: impl Fn(&[u8], &[u8], &[u8], &[u8]) -> Option<Vec<u8>>,
    open: impl Fn(&[u8], &[u8], &[u8], &[u8]) -> Option<Vec<u8>>,
) {
    let (key, iv, aad, msg) = (hex(t, "key"), hex(t, "iv"), hex(t, "aad"), hex(t, "msg"));
    let sealed = [hex(t, "ct"), hex(t, "tag")].concat();
    let opened = open(&key, &sealed, &aad, &iv);
    if iv_bits != 96 {
        assert!(opened.is_none(), "tcId {}: a {iv_bits}-bit nonce", id(t));
        return;
    }
    if result(t) == "valid" {
        assert_eq!(opened.unwrap(), msg, "tcId {}", id(t));
        assert_eq!(
            seal(&key, &msg, &aad, &iv).unwrap(),
            sealed,
            "tcId {}",
            id(t)
        );
    } else {
        assert!(opened.is_none(), "tcId {}", id(t));
    }
}

fn provider_aead(cs: &HushSuite, key_bits: u64, name: &str) -> usize {
    let mut checked = 0;
    for (g, t) in tests(name) {
        if g["keySize"].as_u64().unwrap() != key_bits {
            continue;
        }
        checked += 1;
        let aad = |a: &[u8]| (!a.is_empty()).then_some(a.to_vec());
        aead_case(
            &t,
            g["ivSize"].as_u64().unwrap(),
            |k, m, a, n| cs.aead_seal(k, m, aad(a).as_deref(), n).ok(),
            |k, c, a, n| {
                cs.aead_open(k, c, aad(a).as_deref(), n)
                    .ok()
                    .map(|p| p.to_vec())
            },
        );
    }
    checked
}

#[test]
fn chacha20_poly1305_of_the_xwing_suite() {
    let cs = suite(XWING_CHACHA20POLY1305_SHA256_ED25519);
    assert!(provider_aead(&cs, 256, "chacha20_poly1305_test.json") > 300);
}

#[test]
fn aes_128_gcm_of_the_classical_suite() {
    let cs = suite(CipherSuite::CURVE25519_AES128);
    assert!(provider_aead(&cs, 128, "aes_gcm_test.json") > 100);
}

fn aes_256_key(key: &[u8]) -> Option<LessSafeKey> {
    Some(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?))
}

#[test]
fn aes_256_gcm_of_hush_s_own_sealing() {
    // Sealed envelopes, archives, attachments and the client store use
    // aws-lc's AES-256-GCM directly, with 96-bit nonces.
    let mut checked = 0;
    for (g, t) in tests("aes_gcm_test.json") {
        if g["keySize"].as_u64().unwrap() != 256 {
            continue;
        }
        checked += 1;
        aead_case(
            &t,
            g["ivSize"].as_u64().unwrap(),
            |k, m, a, n| {
                let mut buf = m.to_vec();
                let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
                aes_256_key(k)?
                    .seal_in_place_append_tag(nonce, Aad::from(a), &mut buf)
                    .ok()?;
                Some(buf)
            },
            |k, c, a, n| {
                let mut buf = c.to_vec();
                let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
                let pt = aes_256_key(k)?
                    .open_in_place(nonce, Aad::from(a), &mut buf)
                    .ok()?;
                Some(pt.to_vec())
            },
        );
    }
    assert!(checked > 80);
}

#[test]
fn x25519_of_aws_lc_and_of_x_wing() {
    use aws_lc_rs::agreement::{PrivateKey, UnparsedPublicKey, X25519, agree};
    for (_, t) in tests("x25519_test.json") {
        let (private, public, shared) = (hex(&t, "private"), hex(&t, "public"), hex(&t, "shared"));
        // aws-lc: DHKEM(X25519) of suites 0x0001 and 65100, sealed envelopes.
        let aws = PrivateKey::from_private_key(&X25519, &private)
            .ok()
            .and_then(|sk| {
                agree(&sk, UnparsedPublicKey::new(&X25519, &public), (), |k| {
                    Ok(k.to_vec())
                })
                .ok()
            });
        // x25519-dalek: the X25519 half of X-Wing (raw, no HPKE DHKEM).
        let sk = x25519_dalek::StaticSecret::from(<[u8; 32]>::try_from(&private[..]).unwrap());
        let pk = x25519_dalek::PublicKey::from(<[u8; 32]>::try_from(&public[..]).unwrap());
        let dalek = sk.diffie_hellman(&pk).to_bytes().to_vec();
        match result(&t) {
            "valid" => {
                assert_eq!(aws.as_deref(), Some(&shared[..]), "aws-lc tcId {}", id(&t));
                assert_eq!(dalek, shared, "dalek tcId {}", id(&t));
            }
            // Low-order and non-canonical points: either the right value or
            // a refusal (aws-lc refuses an all-zero secret), never another.
            _ => {
                if let Some(s) = aws {
                    assert_eq!(s, shared, "aws-lc tcId {}", id(&t));
                }
                assert_eq!(dalek, shared, "dalek tcId {}", id(&t));
            }
        }
    }
}

#[test]
fn ml_kem_768_inside_x_wing() {
    // Key generation from the 64-byte seed (d || z) and decapsulation, as
    // X-Wing runs them; wrong lengths are refused before any arithmetic.
    for (_, t) in tests("mlkem_768_test.json") {
        let seed = ml_kem::Seed::try_from(&hex(&t, "seed")[..]);
        let ct = ml_kem::ml_kem_768::Ciphertext::try_from(&hex(&t, "c")[..]);
        let (Ok(seed), Ok(ct)) = (seed, ct) else {
            assert_eq!(result(&t), "invalid", "tcId {}", id(&t));
            continue;
        };
        assert_eq!(result(&t), "valid", "tcId {}", id(&t));
        let dk = ml_kem::DecapsulationKey768::from_seed(seed);
        assert_eq!(
            dk.encapsulation_key().to_bytes().to_vec(),
            hex(&t, "ek"),
            "tcId {}",
            id(&t)
        );
        assert_eq!(
            dk.decapsulate(&ct).to_vec(),
            hex(&t, "K"),
            "tcId {}",
            id(&t)
        );
    }
}
