//! Asymmetric token keys for the tests: `TestKey` (an RS256, ES256 or EdDSA private key made
//! here with aws-lc-rs, its public half as a JWK, and tokens it signs) and `KeyServer` (a
//! JWKS over HTTP on a free loopback port, counting how often it is read).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Two RSA keys, generated once per test binary: RSA generation is the slow one.
fn rsa_pair(which: usize) -> &'static aws_lc_rs::rsa::KeyPair {
    static KEYS: OnceLock<[aws_lc_rs::rsa::KeyPair; 2]> = OnceLock::new();
    &KEYS.get_or_init(|| {
        [0, 1].map(|_| aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("an RSA key"))
    })[which]
}

enum Signer {
    Rsa(&'static aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key and the kid its public half goes by.
pub struct TestKey {
    pub kid: String,
    signer: Signer,
}

impl TestKey {
    /// RSA key `which` (0 or 1) of the two this binary generates.
    pub fn rsa(kid: &str, which: usize) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Rsa(rsa_pair(which)),
        }
    }

    /// A fresh P-256 key.
    pub fn ec(kid: &str) -> TestKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
        TestKey {
            kid: kid.into(),
            signer: Signer::Ec(pair),
        }
    }

    /// A fresh Ed25519 key.
    pub fn ed(kid: &str) -> TestKey {
        let pair = Ed25519KeyPair::generate().expect("an Ed25519 key");
        TestKey {
            kid: kid.into(),
            signer: Signer::Ed(pair),
        }
    }

    /// The `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(pair) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            Signer::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
                       "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Signer::Ed(pair) => json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid,
                                       "x": b64(pair.public_key().as_ref())}),
        }
    }

    /// The RSA modulus, for an HS256 token that uses the public key as its secret.
    pub fn rsa_modulus(&self) -> Vec<u8> {
        match self.signer {
            Signer::Rsa(pair) => PublicKeyComponents::<Vec<u8>>::from(pair.public_key()).n,
            _ => panic!("not an RSA key"),
        }
    }

    /// A token with `claims`, signed by this key under its own alg and kid.
    pub fn token(&self, claims: Value) -> String {
        self.sign(
            json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// A token with this header and these claims, signed by this key.
    pub fn sign(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &self.signer {
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                let rng = SystemRandom::new();
                pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                    .expect("RS256 signing");
                signature
            }
            Signer::Ec(pair) => {
                let signature = pair.sign(&SystemRandom::new(), input.as_bytes());
                signature.expect("ES256 signing").as_ref().to_vec()
            }
            Signer::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// A key set document holding the public halves of `keys`.
pub fn key_set(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// A JWKS served over HTTP at `url`, until dropped.
pub struct KeyServer {
    pub url: String,
    shared: Arc<Served>,
    task: tokio::task::JoinHandle<()>,
}

struct Served {
    document: Mutex<Value>,
    reads: AtomicUsize,
    /// Answer 503 instead of the document.
    down: AtomicBool,
}

impl KeyServer {
    /// Serves the key set of `keys` at `http://127.0.0.1:PORT/jwks.json`.
    pub async fn start(keys: &[&TestKey]) -> KeyServer {
        let shared = Arc::new(Served {
            document: Mutex::new(key_set(keys)),
            reads: AtomicUsize::new(0),
            down: AtomicBool::new(false),
        });
        let served = shared.clone();
        let router = axum::Router::new().route(
            "/jwks.json",
            get(async move || {
                served.reads.fetch_add(1, Ordering::SeqCst);
                if served.down.load(Ordering::SeqCst) {
                    return Err(StatusCode::SERVICE_UNAVAILABLE);
                }
                Ok(axum::Json(served.document.lock().clone()))
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the key server");
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("key server");
        });
        KeyServer { url, shared, task }
    }

    /// From now on, serves the key set of `keys`.
    pub fn serve(&self, keys: &[&TestKey]) {
        *self.shared.document.lock() = key_set(keys);
    }

    /// From now on, answers 503 (`true`) or the key set (`false`).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// How many times the key set was asked for.
    pub fn reads(&self) -> usize {
        self.shared.reads.load(Ordering::SeqCst)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
