//! `KeySet`: the usable keys of a JSON Web Key Set document (RFC 7517), by `kid`. A key is
//! usable when it is an RSA key of at least 2048 bits (RS256), a P-256 key (ES256) or an
//! Ed25519 key (EdDSA), meant for signatures; each is bound to that one algorithm, so a token
//! cannot choose how its key is read. Symmetric (`oct`) keys are never taken from a key set:
//! HS256 is the node's own secret only.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Smallest RSA modulus taken, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// One public key and the one algorithm it verifies.
pub(super) struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The usable keys of one read of the key set.
#[derive(Default)]
pub(super) struct KeySet {
    keys: HashMap<String, Arc<Key>>,
    /// Keys of the document that were not taken (other types, encryption keys, no kid,
    /// a kid seen before).
    pub skipped: usize,
}

impl KeySet {
    /// The usable keys of a JWKS document; an error when it is not one.
    pub fn parse(document: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document =
            serde_json::from_slice(document).map_err(|e| format!("not a JSON Web Key Set: {e}"))?;
        let mut set = KeySet::default();
        for value in document.keys {
            let usable = serde_json::from_value::<Jwk>(value)
                .map_err(|e| format!("not a JWK: {e}"))
                .and_then(|jwk| usable(&jwk));
            match usable {
                Ok((kid, key)) if !set.keys.contains_key(&kid) => {
                    set.keys.insert(kid, Arc::new(key));
                }
                Ok((kid, _)) => {
                    tracing::debug!(kid, "JWKS key skipped: a key with this kid came first");
                    set.skipped += 1;
                }
                Err(why) => {
                    tracing::debug!(why, "JWKS key skipped");
                    set.skipped += 1;
                }
            }
        }
        Ok(set)
    }

    /// The key `kid` names.
    pub fn get(&self, kid: &str) -> Option<Arc<Key>> {
        self.keys.get(kid).cloned()
    }

    /// How many keys were taken.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

/// The kid and key of `jwk`, or why it is not taken.
fn usable(jwk: &Jwk) -> Result<(String, Key), String> {
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err(format!("{kid}: not a signature key (use)"));
    }
    if jwk
        .common
        .key_operations
        .as_ref()
        .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(format!("{kid}: key_ops lacks verify"));
    }
    let (alg, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = decoded(&rsa.n)?;
            let significant = n.iter().skip_while(|b| **b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err(format!("{kid}: RSA key shorter than 2048 bits"));
            }
            (Algorithm::RS256, KeyAlgorithm::RS256)
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            if decoded(&ec.x)?.len() != 32 || decoded(&ec.y)?.len() != 32 {
                return Err(format!("{kid}: P-256 coordinates must be 32 bytes"));
            }
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            if decoded(&okp.x)?.len() != 32 {
                return Err(format!("{kid}: Ed25519 key must be 32 bytes"));
            }
            (Algorithm::EdDSA, KeyAlgorithm::EdDSA)
        }
        _ => {
            return Err(format!("{kid}: not an RSA, P-256 or Ed25519 public key"));
        }
    };
    if let Some(named) = jwk.common.key_algorithm
        && named != declared
    {
        return Err(format!("{kid}: alg {named:?} is not taken for this key"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{kid}: {e}"))?;
    Ok((kid, Key { alg, key }))
}

/// Base64url without padding, as JWK members are.
fn decoded(member: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(member)
        .map_err(|e| format!("bad base64url: {e}"))
}
