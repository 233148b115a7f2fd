//! Unit tests of token verification: HS256 with the secret, RS256, ES256 and EdDSA with a
//! key set file (tokens signed here with aws-lc-rs, independently of the JWT library), the
//! algorithm and claim checks, and the key set's refresh on an unknown kid.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::sync::OnceLock;

use super::keys::KeySet;
use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Two RSA keys, generated once: RSA generation is the slow one.
fn rsa_pair(i: usize) -> &'static aws_lc_rs::rsa::KeyPair {
    static KEYS: OnceLock<[aws_lc_rs::rsa::KeyPair; 2]> = OnceLock::new();
    &KEYS.get_or_init(|| {
        [0, 1].map(|_| aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap())
    })[i]
}

/// A private key, its kid, and its public half as a JWK.
enum Signer {
    Rsa(&'static aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct TestKey {
    kid: String,
    signer: Signer,
}

impl TestKey {
    fn rsa(kid: &str, which: usize) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Rsa(rsa_pair(which)),
        }
    }

    fn ec(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        TestKey {
            kid: kid.into(),
            signer: Signer::Ec(pair),
        }
    }

    fn ed(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::generate().unwrap()),
        }
    }

    /// The `alg` this key signs with.
    fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public key as a JWK.
    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(pair) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&public.n), "e": b64(&public.e)})
            }
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    /// A token with `claims`, signed by this key, its header naming `alg` and this kid.
    fn token_as(&self, alg: &str, claims: Value) -> String {
        self.sign(json!({"alg": alg, "typ": "JWT", "kid": self.kid}), claims)
    }

    /// A token with this header and these claims, signed by this key.
    fn sign(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &self.signer {
            Signer::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ec(pair) => pair
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }

    fn token(&self, claims: Value) -> String {
        self.token_as(self.alg(), claims)
    }
}

fn key_set(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// A key set file holding `keys`, and the settings reading it (no secret).
fn jwks_file(keys: &[&TestKey]) -> (tempfile::TempDir, AuthSettings) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, key_set(keys).to_string()).unwrap();
    let settings = AuthSettings {
        jwks: Some(crate::settings::JwksSource::File(path)),
        ..AuthSettings::default()
    };
    (dir, settings)
}

fn rewrite(dir: &tempfile::TempDir, keys: &[&TestKey]) {
    std::fs::write(dir.path().join("jwks.json"), key_set(keys).to_string()).unwrap();
}

async fn start(settings: &AuthSettings) -> Authenticator {
    Authenticator::start(settings, false, CancellationToken::new())
        .await
        .unwrap()
}

fn user(user: UserId, exp: u64) -> Result<Identity, AuthError> {
    Ok(Identity {
        user,
        expires_at: Some(exp),
    })
}

#[tokio::test]
async fn mint_then_verify() {
    let a = Authenticator::new(SECRET);
    let identity = a
        .verify(&a.mint(42, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(identity.user, 42);
    let exp = identity.expires_at.unwrap();
    assert!((now() + 59..=now() + 60).contains(&exp), "{exp}");
}

#[tokio::test]
async fn sub_as_string_or_number() {
    let a = Authenticator::new(SECRET);
    let exp = now() + 60;
    let t = hs256(json!({"sub": "7", "exp": exp}), SECRET);
    assert_eq!(a.verify(&t).await, user(7, exp));
    let t = hs256(json!({"sub": 0, "exp": exp}), SECRET);
    assert_eq!(a.verify(&t).await, Err(AuthError::BadSubject));
    let t = hs256(json!({"sub": "abc", "exp": exp}), SECRET);
    assert_eq!(a.verify(&t).await, Err(AuthError::BadSubject));
}

#[tokio::test]
async fn refusals() {
    let a = Authenticator::new(SECRET);
    let expired = hs256(json!({"sub": 1, "exp": now() - 1}), SECRET);
    assert_eq!(a.verify(&expired).await, Err(AuthError::Expired));
    let other = hs256(
        json!({"sub": 1, "exp": now() + 60}),
        b"another-secret-another-secret-xx",
    );
    assert_eq!(a.verify(&other).await, Err(AuthError::BadSignature));
    let no_exp = hs256(json!({"sub": 1}), SECRET);
    assert_eq!(
        a.verify(&no_exp).await,
        Err(AuthError::MissingClaim("exp".into()))
    );
    assert_eq!(a.verify("not.a.token").await, Err(AuthError::Malformed));
    // {"alg":"none","typ":"JWT"} . {"sub":1,"exp":9999999999} . (no signature)
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOjEsImV4cCI6OTk5OTk5OTk5OX0.";
    assert_eq!(a.verify(none).await, Err(AuthError::BadAlgorithm("HS256")));
    assert_eq!(
        AuthError::BadAlgorithm("HS256").to_string(),
        "token algorithm not accepted: only HS256"
    );
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let a = Authenticator::new(SECRET);
    let exp = now() + 600;
    let later = hs256(json!({"sub": 1, "exp": exp, "nbf": now() + 60}), SECRET);
    assert_eq!(a.verify(&later).await, Err(AuthError::NotYetValid));
    assert_eq!(AuthError::NotYetValid.to_string(), "token not valid yet");
    let now_valid = hs256(json!({"sub": 1, "exp": exp, "nbf": now()}), SECRET);
    assert_eq!(a.verify(&now_valid).await, user(1, exp));
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let exp = now() + 600;
    let a = Authenticator::new(SECRET).with_claims(Some("https://idp/"), Some("chat"));
    let verify = async |claims: Value| a.verify(&hs256(claims, SECRET)).await;
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": "https://idp/", "aud": "chat"})).await,
        user(1, exp)
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": "https://idp/", "aud": ["other", "chat"]}))
            .await,
        user(1, exp)
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": "https://evil/", "aud": "chat"})).await,
        Err(AuthError::BadIssuer)
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": ["https://idp/"], "aud": "chat"})).await,
        Err(AuthError::BadIssuer)
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": "https://idp/", "aud": "other"})).await,
        Err(AuthError::BadAudience)
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "aud": "chat"})).await,
        Err(AuthError::MissingClaim("iss".into()))
    );
    assert_eq!(
        verify(json!({"sub": 1, "exp": exp, "iss": "https://idp/"})).await,
        Err(AuthError::MissingClaim("aud".into()))
    );
    // Minted tokens carry both; without the settings, neither is looked at.
    assert_eq!(
        a.verify(&a.mint(5, Duration::from_secs(60)))
            .await
            .unwrap()
            .user,
        5
    );
    let plain = Authenticator::new(SECRET);
    assert_eq!(
        plain
            .verify(&hs256(
                json!({"sub": 1, "exp": exp, "iss": "x", "aud": "y"}),
                SECRET
            ))
            .await,
        user(1, exp)
    );
}

#[tokio::test]
async fn each_algorithm_verifies_with_its_key_set_key() {
    let (rsa, ec, ed) = (TestKey::rsa("r", 0), TestKey::ec("e"), TestKey::ed("d"));
    let (_dir, settings) = jwks_file(&[&rsa, &ec, &ed]);
    let a = start(&settings).await;
    let exp = now() + 600;
    for (key, id) in [(&rsa, 1), (&ec, 2), (&ed, 3)] {
        let token = key.token(json!({"sub": id, "exp": exp}));
        assert_eq!(a.verify(&token).await, user(id, exp), "{}", key.alg());
    }
    // Without a secret, HS256 is not taken at all.
    let t = hs256(json!({"sub": 1, "exp": exp}), SECRET);
    assert_eq!(
        a.verify(&t).await,
        Err(AuthError::BadAlgorithm("RS256, ES256, EdDSA"))
    );
}

#[tokio::test]
async fn another_key_under_a_known_kid_is_a_bad_signature() {
    let (_dir, settings) = jwks_file(&[&TestKey::rsa("r", 0), &TestKey::ec("e")]);
    let a = start(&settings).await;
    let claims = json!({"sub": 1, "exp": now() + 600});
    for impostor in [TestKey::rsa("r", 1), TestKey::ec("e")] {
        assert_eq!(
            a.verify(&impostor.token(claims.clone())).await,
            Err(AuthError::BadSignature),
            "{}",
            impostor.alg()
        );
    }
}

#[tokio::test]
async fn the_algorithm_must_be_the_keys() {
    let (rsa, ec) = (TestKey::rsa("r", 0), TestKey::ec("e"));
    let (_dir, mut settings) = jwks_file(&[&rsa, &ec]);
    settings.jwt_secret = Some(crate::settings::Secret::from(
        std::str::from_utf8(SECRET).unwrap(),
    ));
    let a = start(&settings).await;
    let claims = json!({"sub": 1, "exp": now() + 600});
    // ES256 in the header of a token whose kid is the RSA key, and the reverse.
    let es256_as_r = ec.sign(json!({"alg": "ES256", "kid": "r"}), claims.clone());
    assert_eq!(a.verify(&es256_as_r).await, Err(AuthError::KeyMismatch));
    assert_eq!(
        a.verify(&rsa.token_as("EdDSA", claims.clone())).await,
        Err(AuthError::KeyMismatch)
    );
    // RSA, but another hash: not taken.
    assert_eq!(
        a.verify(&rsa.token_as("RS512", claims.clone())).await,
        Err(AuthError::BadAlgorithm("HS256, RS256, ES256, EdDSA"))
    );
    // HS256 is the secret's, whatever the kid: the RSA public key as an HMAC secret (the
    // classic confusion) is a bad signature.
    let n = PublicKeyComponents::<Vec<u8>>::from(rsa_pair(0).public_key()).n;
    let header = Header {
        kid: Some("r".into()),
        ..Header::new(Algorithm::HS256)
    };
    let confused = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&n)).unwrap();
    assert_eq!(a.verify(&confused).await, Err(AuthError::BadSignature));
    // No kid, or one the set does not hold.
    let no_kid = ec.sign(json!({"alg": "ES256"}), claims.clone());
    assert_eq!(a.verify(&no_kid).await, Err(AuthError::MissingKeyId));
    let stranger = TestKey::ed("nobody");
    assert_eq!(
        a.verify(&stranger.token(claims)).await,
        Err(AuthError::UnknownKey)
    );
}

#[tokio::test]
async fn an_unknown_kid_rereads_the_set_at_most_once_per_interval() {
    let (first, second, third) = (TestKey::ed("1"), TestKey::ec("2"), TestKey::ed("3"));
    let (dir, mut settings) = jwks_file(&[&first]);
    settings.jwks_min_refresh = Duration::from_secs(3600);
    let a = start(&settings).await;
    let claims = json!({"sub": 9, "exp": now() + 600});
    assert_eq!(
        a.verify(&first.token(claims.clone())).await.unwrap().user,
        9
    );
    // Rotated: the new kid is read at once, the old one is gone.
    rewrite(&dir, &[&second]);
    assert_eq!(
        a.verify(&second.token(claims.clone())).await.unwrap().user,
        9
    );
    // That read used up the interval: the next new kid is not looked for before it ends,
    // and the held keys keep working.
    rewrite(&dir, &[&second, &third]);
    assert_eq!(
        a.verify(&third.token(claims.clone())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(
        a.verify(&first.token(claims.clone())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(a.verify(&second.token(claims)).await.unwrap().user, 9);
}

#[tokio::test]
async fn a_set_that_cannot_be_read_refuses_the_start_and_a_bad_reread_keeps_the_keys() {
    let key = TestKey::ec("k");
    let (dir, mut settings) = jwks_file(&[&key]);
    settings.jwks_min_refresh = Duration::from_millis(1);
    let a = start(&settings).await;
    std::fs::write(dir.path().join("jwks.json"), "not json").unwrap();
    let claims = json!({"sub": 4, "exp": now() + 600});
    // An unknown kid makes it read the broken file, which changes nothing.
    assert_eq!(
        a.verify(&TestKey::ec("new").token(claims.clone())).await,
        Err(AuthError::UnknownKey)
    );
    assert_eq!(a.verify(&key.token(claims)).await.unwrap().user, 4);
    settings.jwks = Some(crate::settings::JwksSource::File(
        dir.path().join("absent.json"),
    ));
    let refused = Authenticator::start(&settings, false, CancellationToken::new()).await;
    assert!(refused.is_err());
}

#[test]
fn only_signature_keys_of_the_three_kinds_are_taken() {
    let (rsa, ec, ed) = (TestKey::rsa("r", 0), TestKey::ec("e"), TestKey::ed("d"));
    let mut enc = ec.jwk();
    enc["kid"] = json!("enc");
    enc["use"] = json!("enc");
    let mut declared_other = ed.jwk();
    declared_other["kid"] = json!("declared");
    declared_other["alg"] = json!("ES256");
    let mut declared_same = rsa.jwk();
    declared_same["kid"] = json!("declared-same");
    declared_same["alg"] = json!("RS256");
    let mut no_kid = ec.jwk();
    no_kid.as_object_mut().unwrap().remove("kid");
    let mut verify_only = ed.jwk();
    verify_only["kid"] = json!("ops");
    verify_only["key_ops"] = json!(["verify"]);
    let document = json!({"keys": [
        rsa.jwk(), ec.jwk(), ed.jwk(), declared_same, verify_only,
        enc, declared_other, no_kid,
        // The same kid again: the first one stays.
        TestKey::ec("e").jwk(),
        {"kty": "oct", "kid": "hmac", "k": b64(SECRET)},
        {"kty": "EC", "crv": "P-384", "kid": "p384", "x": b64(&[1; 48]), "y": b64(&[2; 48])},
        {"kty": "RSA", "kid": "short", "n": b64(&[0xc5; 128]), "e": "AQAB"},
        {"kty": "RSA", "kid": "sign-ops", "n": b64(&[0xc5; 256]), "e": "AQAB", "key_ops": ["sign"]},
        {"kty": "XYZ", "kid": "future"},
    ]});
    let set = KeySet::parse(document.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 5);
    assert_eq!(set.skipped, 9);
    for (kid, alg) in [
        ("r", Algorithm::RS256),
        ("e", Algorithm::ES256),
        ("d", Algorithm::EdDSA),
        ("declared-same", Algorithm::RS256),
        ("ops", Algorithm::EdDSA),
    ] {
        assert_eq!(set.get(kid).map(|k| k.alg), Some(alg), "{kid}");
    }
    assert!(KeySet::parse(b"{\"no\": \"keys\"}").is_err());
    assert!(KeySet::parse(b"[]").is_err());
}
