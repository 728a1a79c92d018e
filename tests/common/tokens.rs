//! Tokens as an identity provider would mint them, good and bad.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub fn claims(org: &str, scopes: &str) -> Value {
    json!({"sub": format!("test-{org}"), "org": org, "scope": scopes, "iss": "passerelle", "aud": "passerelle",
           "exp": now() + 3600, "nbf": now() - 5, "iat": now() - 5})
}

pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn key_pem(name: &str) -> Vec<u8> {
    std::fs::read(super::fixture(&format!("keys/{name}"))).expect("key file")
}

/// Signed with one of the fixture keys, with its `kid`.
pub fn signed(alg: Algorithm, kid: &str, key_file: &str, claims: &Value) -> String {
    let pem = key_pem(key_file);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        other => panic!("no fixture for {other:?}"),
    }
    .expect("pem");
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("encode")
}

/// A token with an arbitrary header, signed with HMAC-SHA256 over `secret` — for forgeries such
/// as `alg: none` or an HS256 token keyed with an RSA public key.
pub fn forged(header: &Value, claims: &Value, secret: Option<&[u8]>) -> String {
    use hmac::{Hmac, Mac};
    let head = URL_SAFE_NO_PAD.encode(header.to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{head}.{body}");
    let signature = match secret {
        Some(secret) => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
            mac.update(input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{input}.{signature}")
}

/// The RSA public key of the JWKS, as PEM bytes: what a key-confusion attacker would use as an
/// HMAC secret.
pub fn rsa_public_pem() -> Vec<u8> {
    key_pem("rs256.pub.pem")
}
