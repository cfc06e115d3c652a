//! X-Wing against the official test vectors of draft-connolly-cfrg-xwing-kem
//! (`tests/vectors/xwing/test-vectors.json`, see the README beside it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hush_proto::xwing::{XWing, XWingError};
use mls_rs_core::crypto::{HpkePublicKey, HpkeSecretKey};
use mls_rs_crypto_traits::KemType;
use serde::Deserialize;

#[derive(Deserialize)]
struct Hex {
    seed: String,
    eseed: String,
    ss: String,
    sk: String,
    pk: String,
    ct: String,
}

struct Vector {
    seed: Vec<u8>,
    eseed: Vec<u8>,
    ss: Vec<u8>,
    sk: Vec<u8>,
    pk: Vec<u8>,
    ct: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let vectors: Vec<Hex> =
        serde_json::from_str(include_str!("vectors/xwing/test-vectors.json")).unwrap();
    assert_eq!(vectors.len(), 3, "the draft ships three vectors");
    let h = |s: &str| hex::decode(s).unwrap();
    vectors
        .iter()
        .map(|v| Vector {
            seed: h(&v.seed),
            eseed: h(&v.eseed),
            ss: h(&v.ss),
            sk: h(&v.sk),
            pk: h(&v.pk),
            ct: h(&v.ct),
        })
        .collect()
}

#[test]
fn key_generation_encapsulation_and_decapsulation_match_the_draft() {
    for v in vectors() {
        let (sk, pk) = XWing::key_pair_from_seed(&v.seed).unwrap();
        // Since draft-06 the decapsulation key is the 32-byte seed itself.
        assert_eq!(sk.as_ref(), v.sk.as_slice());
        assert_eq!(pk.as_ref(), v.pk.as_slice());

        let enc = XWing::encapsulate_derand(&v.pk, &v.eseed).unwrap();
        assert_eq!(enc.enc(), v.ct.as_slice());
        assert_eq!(enc.shared_secret(), v.ss.as_slice());

        let ss = XWing::decapsulate(&v.ct, &v.sk).unwrap();
        assert_eq!(ss.as_slice(), v.ss.as_slice());
    }
}

#[test]
fn the_hpke_kem_decapsulates_the_vectors() {
    for v in vectors() {
        let ss = XWing
            .decap(
                &v.ct,
                &HpkeSecretKey::from(v.sk.clone()),
                &HpkePublicKey::from(v.pk.clone()),
            )
            .unwrap();
        assert_eq!(ss, v.ss);
        XWing
            .public_key_validate(&HpkePublicKey::from(v.pk.clone()))
            .unwrap();
        assert_eq!(XWing.kem_id(), 0x647a);
    }
}

#[test]
fn a_tampered_ciphertext_decapsulates_to_another_secret() {
    // ML-KEM's implicit rejection and the X25519 share both feed the
    // combiner: any flipped bit gives an unrelated secret, never the sender's.
    let v = &vectors()[0];
    for at in [0, 1087, 1088, 1119] {
        let mut ct = v.ct.clone();
        ct[at] ^= 1;
        let ss = XWing::decapsulate(&ct, &v.sk).unwrap();
        assert_ne!(ss.as_slice(), v.ss.as_slice(), "byte {at}");
    }
}

#[test]
fn fresh_encapsulations_round_trip() {
    let (sk, pk) = XWing.generate().unwrap();
    let a = XWing.encap(&pk).unwrap();
    let b = XWing.encap(&pk).unwrap();
    assert_ne!(
        a.enc(),
        b.enc(),
        "each encapsulation draws fresh randomness"
    );
    assert_eq!(XWing.decap(a.enc(), &sk, &pk).unwrap(), a.shared_secret());
    assert_eq!(XWing.decap(b.enc(), &sk, &pk).unwrap(), b.shared_secret());
}

#[test]
fn derive_key_pair_is_deterministic_and_not_the_raw_seed() {
    let ikm = [7u8; 32];
    let (sk1, pk1) = XWing.generate_deterministic(&ikm).unwrap();
    let (sk2, pk2) = XWing.generate_deterministic(&ikm).unwrap();
    assert_eq!((sk1.as_ref(), pk1.as_ref()), (sk2.as_ref(), pk2.as_ref()));
    // DeriveKeyPair hashes the ikm with SHAKE256 first (the draft's "Use in
    // HPKE"): its key is not the one of the ikm taken as a seed.
    let (_, raw) = XWing::key_pair_from_seed(&ikm).unwrap();
    assert_ne!(pk1.as_ref(), raw.as_ref());
    // Any ikm length is accepted, as HPKE requires.
    XWing.generate_deterministic(&[1u8; 64]).unwrap();
}

#[test]
fn malformed_inputs_are_errors_not_panics() {
    let v = &vectors()[0];
    assert_eq!(
        XWing::key_pair_from_seed(&[0u8; 31]).unwrap_err(),
        XWingError::InvalidSecretKey
    );
    assert_eq!(
        XWing::encapsulate_derand(&v.pk[1..], &v.eseed).unwrap_err(),
        XWingError::InvalidPublicKey
    );
    assert_eq!(
        XWing::decapsulate(&v.ct[1..], &v.sk).unwrap_err(),
        XWingError::InvalidCiphertext
    );
    // An old-style (draft-01) expanded secret key is refused, not misread.
    assert_eq!(
        XWing::decapsulate(&v.ct, &[0u8; 2432]).unwrap_err(),
        XWingError::InvalidSecretKey
    );
    // An ML-KEM public key whose coefficients exceed q fails the FIPS 203
    // modulus check.
    let mut pk = v.pk.clone();
    pk[0] = 0xff;
    pk[1] = 0xff;
    assert_eq!(
        XWing
            .public_key_validate(&HpkePublicKey::from(pk))
            .unwrap_err(),
        XWingError::InvalidPublicKey
    );
}
