//! Bearer-token verification (JWKS keys chosen by `kid`, or the HS256 development secret) and
//! the mapping of a verified token to a calling organisation.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::{Config, Secret};
use crate::problem::ApiError;

/// Leeway on `exp` and `nbf` (API.md §2: at most 60 s).
pub const LEEWAY_SECONDS: u64 = 60;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub org: String,
    #[serde(default)]
    pub scope: String,
    pub iss: String,
    pub aud: Audience,
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_numeric_date"
    )]
    pub nbf: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "optional_numeric_date"
    )]
    pub iat: Option<i64>,
}

/// RFC 7519's NumericDate: seconds since the epoch, "possibly non-integer" (some issuers write
/// `time.time()`). Rounded to the second, as `jsonwebtoken` does when it judges `exp` and `nbf`,
/// so that both read one instant; a number out of range is refused like a missing one.
fn numeric_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    NumericDate::deserialize(deserializer)?.seconds()
}

fn optional_numeric_date<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Option::<NumericDate>::deserialize(deserializer)?
        .map(NumericDate::seconds)
        .transpose()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumericDate {
    Whole(i64),
    Fraction(f64),
}

impl NumericDate {
    fn seconds<E: serde::de::Error>(self) -> Result<i64, E> {
        match self {
            NumericDate::Whole(n) => Ok(n),
            // Within ±2^53, where every f64 is exact to the second.
            NumericDate::Fraction(f) if f.is_finite() && f.abs() < 9_007_199_254_740_992.0 => Ok(f.round() as i64),
            NumericDate::Fraction(_) => Err(E::custom("a NumericDate out of range")),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

struct PublicKey {
    alg: Algorithm,
    key: DecodingKey,
}

pub struct Authenticator {
    jwks: RwLock<HashMap<String, Arc<PublicKey>>>,
    jwks_source: Option<String>,
    hs256: Option<DecodingKey>,
    issuer: String,
    audience: String,
    /// Tokens that verified, by their exact text: a clerk's token is sent with every check of
    /// the day, and verifying its signature again each time (RS256 about 22 µs, ES256 about
    /// 70 µs on a core here) would cost as much as the rest of the check's own work. Only a
    /// token that passed every test is kept, so the cache cannot be filled by forged ones; its
    /// `exp` is checked again at each use, and every JWKS reload empties it (a withdrawn key's
    /// tokens are refused from then on).
    verified: quick_cache::sync::Cache<String, Claims, TokenBytes>,
}

/// What the cache of verified tokens may hold, in bytes of token and claims' text: thousands of
/// callers' tokens (an identity provider's are about 1 KB), and a bound on memory whatever
/// their size. A token pushed out is verified again at its next use.
const VERIFIED_TOKEN_BYTES: u64 = 8 << 20;

/// Weighs a verified token by the text it keeps.
#[derive(Clone)]
struct TokenBytes;

impl quick_cache::Weighter<String, Claims> for TokenBytes {
    fn weight(&self, token: &String, claims: &Claims) -> u64 {
        let text = claims.sub.len() + claims.org.len() + claims.scope.len() + claims.iss.len();
        u64::try_from(token.len() + text).unwrap_or(u64::MAX)
    }
}

/// Whether the token's header has a `crit` member. A recipient must refuse a token whose `crit`
/// names an extension it does not understand (RFC 7515 §4.1.11), and this service understands
/// none; jsonwebtoken's `Header` does not read the member, so the header is read here. A header
/// that does not decode is left to `decode_header`, which refuses it.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let head = token.split('.').next().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).ok())
        .is_some_and(|header| header.contains_key("crit"))
}
fn unauthorized(en: &'static str, fr: &'static str) -> ApiError {
    ApiError::Unauthorized { en, fr }
}

/// The algorithm a JWK is for: its `alg` when given, else what its key type implies.
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(KeyAlgorithm::RS256) if implied == Algorithm::RS256 => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) if implied == Algorithm::ES256 => Some(Algorithm::ES256),
        Some(KeyAlgorithm::EdDSA) if implied == Algorithm::EdDSA => Some(Algorithm::EdDSA),
        Some(_) => None,
    }
}

/// The signing keys of a JWKS. An identity provider's set often also lists keys this service
/// cannot or must not use (encryption keys, other algorithms): each is skipped with a warning
/// rather than failing the set, which would stop the service or its key rotation. The set is the
/// truth: a key it no longer lists (withdrawn, perhaps compromised) is no longer trusted, even
/// when none is left.
fn parse_jwks(text: &str) -> Result<HashMap<String, Arc<PublicKey>>, String> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let mut keys = HashMap::new();
    for (i, raw) in set.keys.into_iter().enumerate() {
        match signing_key(raw) {
            Ok((kid, key)) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(why) => tracing::warn!(key = i, reason = %why, "a key of the JWKS is ignored"),
        }
    }
    if keys.is_empty() {
        tracing::warn!(
            "no key of the JWKS can verify tokens (each needs a kid and must be an RS256, ES256 (P-256) or \
             EdDSA (Ed25519) signing key): tokens signed by its issuers are refused"
        );
    }
    Ok(keys)
}

fn signing_key(raw: serde_json::Value) -> Result<(String, PublicKey), String> {
    let jwk: Jwk = serde_json::from_value(raw).map_err(|e| format!("not a key this service reads: {e}"))?;
    let kid = jwk.common.key_id.clone().ok_or("it has no kid")?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
        || jwk
            .common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
    {
        return Err(format!("key {kid:?} is not for verifying signatures"));
    }
    let alg = algorithm_of(&jwk)
        .ok_or_else(|| format!("key {kid:?}: only RS256, ES256 (P-256) and EdDSA (Ed25519) keys are accepted"))?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("key {kid:?}: {e}"))?;
    Ok((kid, PublicKey { alg, key }))
}

/// The largest JWKS read over https (1 MiB): thousands of keys.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// How long fetching an https JWKS may take: without a bound, a host that accepts the
/// connection and never answers would hold the start, or every later key rotation.
const JWKS_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An error with its causes, `: `-separated: reqwest's own text ("error sending request for
/// url") says nothing of a refused connection or an untrusted certificate, its sources do.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A URL as errors name it: without credentials, query or fragment, which may hold secrets of
/// their own (the configuration refuses credentials; a query may still carry a key).
fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "the JWKS URL".to_owned(),
    }
}

async fn read_jwks(source: &str) -> Result<String, String> {
    if crate::config::has_scheme(source, "https://") {
        let at = shown(source);
        // Fetched where it is named, and only over https: a redirect, above all to `http://`
        // where anyone on the path could slip in a key of their own and sign as any organisation,
        // is an error to mend in the configuration, never followed.
        let client = reqwest::Client::builder()
            .timeout(JWKS_FETCH_TIMEOUT)
            .user_agent(concat!("passerelle/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .build()
            .map_err(|e| format!("cannot fetch {at}: {e}"))?;
        let response = client
            .get(source)
            .send()
            .await
            // Named once, as shown: reqwest's own text would quote the URL whole.
            .map_err(|e| format!("cannot fetch {at}: {}", with_causes(&e.without_url())))?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| response.url().join(l).ok())
                .map_or_else(|| "elsewhere".to_owned(), |to| shown(to.as_str()));
            return Err(format!(
                "cannot fetch {at}: it answered {status}, a redirect to {to}, which is not followed: give the key set's own https URL"
            ));
        }
        if !status.is_success() {
            return Err(format!("cannot fetch {at}: it answered {status}"));
        }
        // A key set is a few kilobytes; one past the bound is no key set, and is not held whole.
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("cannot read {at}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_JWKS_BYTES {
                return Err(format!(
                    "cannot read {at}: more than {MAX_JWKS_BYTES} bytes, which no key set needs"
                ));
            }
        }
        String::from_utf8(body).map_err(|_| format!("cannot read {at}: not UTF-8"))
    } else {
        tokio::fs::read_to_string(source)
            .await
            .map_err(|e| format!("cannot read {source}: {e}"))
    }
}

impl Authenticator {
    pub async fn from_config(config: &Config) -> Result<Authenticator, String> {
        let jwks = match &config.jwt_jwks {
            Some(source) => parse_jwks(&read_jwks(source).await?)?,
            None => HashMap::new(),
        };
        Ok(Authenticator {
            jwks: RwLock::new(jwks),
            jwks_source: config.jwt_jwks.clone(),
            hs256: config
                .jwt_hs256_secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            verified: quick_cache::sync::Cache::with_weighter(8_192, VERIFIED_TOKEN_BYTES, TokenBytes),
        })
    }

    pub fn has_keys(&self) -> bool {
        self.hs256.is_some() || self.jwks_source.is_some()
    }

    /// Reloads the JWKS so a key added for rotation is accepted without a restart.
    pub async fn refresh(&self) -> Result<(), String> {
        let Some(source) = &self.jwks_source else { return Ok(()) };
        let keys = parse_jwks(&read_jwks(source).await?)?;
        let mut current = self.jwks.write().await;
        let ids = |set: &HashMap<String, Arc<PublicKey>>| {
            let mut ids: Vec<String> = set.keys().cloned().collect();
            ids.sort_unstable();
            ids
        };
        // A rotation's steps wait for every replica to hold the new key: each says when it does.
        if ids(&current) != ids(&keys) {
            tracing::info!(kids = ?ids(&keys), "JWKS reloaded: the accepted keys changed");
        }
        *current = keys;
        // Under the write lock: no verification with the old keys can store its token after this.
        self.verified.clear();
        Ok(())
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp()).await
    }

    /// `verify` at the instant `now` (Unix seconds), which decides whether a token verified
    /// earlier has expired since; a token not verified yet is checked against the clock by
    /// `jsonwebtoken`.
    async fn verify_at(&self, token: &str, now: u64) -> Result<Claims, ApiError> {
        if let Some(claims) = self.verified.get(token) {
            // As `jsonwebtoken` judges `exp`: expired once `exp + leeway` is past. `nbf` was
            // passed when the token was verified, and stays passed.
            if u64::try_from(claims.exp).unwrap_or(0).saturating_add(LEEWAY_SECONDS) >= now {
                return Ok(claims);
            }
            self.verified.remove(token);
            return Err(unauthorized("The token has expired.", "Le jeton a expiré."));
        }
        // Held across the check, so that a JWKS reload cannot empty the cache between this
        // verification and its storing.
        let keys = self.jwks.read().await;
        let claims = self.verify_signed(token, &keys)?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_signed(&self, token: &str, jwks: &HashMap<String, Arc<PublicKey>>) -> Result<Claims, ApiError> {
        if names_critical_extensions(token) {
            return Err(unauthorized(
                "The token's header lists critical extensions (crit), which this service does not understand.",
                "L'en-tête du jeton énumère des extensions critiques (crit), que ce service ne comprend pas.",
            ));
        }
        let header = decode_header(token).map_err(|_| {
            unauthorized(
                "The bearer token is not a well-formed JWT with an accepted algorithm.",
                "Le jeton n'est pas un JWT bien formé avec un algorithme accepté.",
            )
        })?;
        let key = match &header.kid {
            Some(kid) => jwks.get(kid).cloned(),
            None => None,
        };
        let (alg, decoding) = match (key, &self.hs256) {
            // A key from the JWKS accepts only its own algorithm: an HS256 token signed with a
            // public key as its secret (key confusion) is refused here.
            (Some(public), _) if header.alg == public.alg => (public.alg, KeyRef::Public(public)),
            (Some(_), _) => {
                return Err(unauthorized(
                    "The token's algorithm does not match its key.",
                    "L'algorithme du jeton ne correspond pas à sa clé.",
                ))
            }
            (None, Some(secret)) if header.alg == Algorithm::HS256 && header.kid.is_none() => {
                (Algorithm::HS256, KeyRef::Secret(secret))
            }
            _ => {
                return Err(unauthorized(
                    "No accepted key verifies this token.",
                    "Aucune clé acceptée ne vérifie ce jeton.",
                ))
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let result = match &decoding {
            KeyRef::Public(p) => decode::<Claims>(token, &p.key, &validation),
            KeyRef::Secret(s) => decode::<Claims>(token, s, &validation),
        };
        let claims = result.map(|data| data.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => unauthorized("The token has expired.", "Le jeton a expiré."),
                ErrorKind::ImmatureSignature => unauthorized(
                    "The token is not valid yet (nbf).",
                    "Le jeton n'est pas encore valable (nbf).",
                ),
                ErrorKind::InvalidAudience => unauthorized(
                    "The token is not meant for this service (aud).",
                    "Le jeton n'est pas destiné à ce service (aud).",
                ),
                ErrorKind::InvalidIssuer => unauthorized(
                    "The token's issuer is not accepted (iss).",
                    "L'émetteur du jeton n'est pas accepté (iss).",
                ),
                ErrorKind::InvalidSignature => unauthorized(
                    "The token's signature is invalid.",
                    "La signature du jeton est invalide.",
                ),
                _ => unauthorized(
                    "The token is invalid or lacks required claims (sub, org, exp, iss, aud).",
                    "Le jeton est invalide ou il lui manque des revendications obligatoires (sub, org, exp, iss, aud).",
                ),
            }
        })?;
        // `sub` is copied into every audit event of the request: an identity provider's subject
        // is short, and a 40 KB one would only swell the log.
        if claims.sub.trim().is_empty() || claims.sub.chars().count() > MAX_SUBJECT_CHARS {
            return Err(unauthorized(
                "The token's subject (sub) must be 1 to 255 characters.",
                "Le sujet du jeton (sub) doit compter de 1 à 255 caractères.",
            ));
        }
        Ok(claims)
    }
}

/// The longest `sub` accepted.
const MAX_SUBJECT_CHARS: usize = 255;

enum KeyRef<'a> {
    Public(Arc<PublicKey>),
    Secret(&'a DecodingKey),
}

/// Mints a development token signed with the HS256 secret (`passerelle token`, `--demo`).
pub fn mint_dev_token(
    secret: &Secret,
    config: &Config,
    org: &str,
    subject: &str,
    scopes: &str,
    ttl_seconds: i64,
    now: i64,
) -> Result<String, String> {
    let claims = Claims {
        sub: subject.to_owned(),
        org: org.to_owned(),
        scope: scopes.to_owned(),
        iss: config.jwt_issuer.clone(),
        aud: Audience::One(config.jwt_audience.clone()),
        exp: now + ttl_seconds,
        nbf: Some(now),
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// Parses `90s`, `15m`, `1h`, `7d` (or bare seconds).
pub fn parse_ttl(text: &str) -> Option<i64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = number.parse().ok().filter(|n| *n > 0)?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).filter(|s| *s <= 366 * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_keys() -> Vec<serde_json::Value> {
        let text = include_str!("../../../tests/fixtures/keys/jwks.json");
        let set: serde_json::Value = serde_json::from_str(text).unwrap();
        set["keys"].as_array().unwrap().clone()
    }

    /// An identity provider's set may list keys this service does not use: they are skipped,
    /// the signing keys kept; a set with none usable is refused.
    #[test]
    fn a_jwks_keeps_its_signing_keys_only() {
        let mut keys = fixture_keys();
        let signing = keys.len();
        let mut encryption = keys[0].clone();
        encryption["kid"] = serde_json::json!("enc-1");
        encryption["use"] = serde_json::json!("enc");
        encryption.as_object_mut().unwrap().remove("alg");
        let mut rs384 = keys[0].clone();
        rs384["kid"] = serde_json::json!("rs384-1");
        rs384["alg"] = serde_json::json!("RS384");
        let mut decrypt_only = keys[0].clone();
        decrypt_only["kid"] = serde_json::json!("ops-1");
        decrypt_only["key_ops"] = serde_json::json!(["decrypt"]);
        keys.push(decrypt_only);
        let mut no_kid = keys[0].clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        let unknown = serde_json::json!({"kty": "oct", "kid": "hmac-1", "k": "c2VjcmV0", "alg": "HS999"});
        keys.extend([encryption, rs384, no_kid, unknown]);
        let parsed = parse_jwks(&serde_json::json!({ "keys": keys }).to_string()).unwrap();
        assert_eq!(parsed.len(), signing);
        assert!(parsed.contains_key("test-rs256") && !parsed.contains_key("enc-1") && !parsed.contains_key("rs384-1"));
        assert!(!parsed.contains_key("ops-1"));
        // A set with no usable key leaves none trusted: a withdrawn key is gone at once.
        let none = parse_jwks(r#"{"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]}"#)
            .ok()
            .unwrap();
        assert!(none.is_empty());
        assert!(parse_jwks(r#"{"keys": []}"#).ok().unwrap().is_empty());
        assert!(parse_jwks("[]").err().unwrap().contains("not a JWKS"));
    }

    fn rs256_token(exp: i64) -> String {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
        let claims = Claims {
            sub: "clerk-1".into(),
            org: "cms-a".into(),
            scope: "eligibility:check".into(),
            iss: Config::for_database("sqlite://never-opened.db").jwt_issuer,
            aud: Audience::One(Config::for_database("sqlite://never-opened.db").jwt_audience),
            exp,
            nbf: Some(now),
            iat: Some(now),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-rs256".into());
        let key = EncodingKey::from_rsa_pem(include_bytes!("../../../tests/fixtures/keys/rs256.pem")).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// An authenticator reading its JWKS from a file of this test's, holding `keys`.
    async fn with_jwks(name: &str, keys: &[serde_json::Value]) -> (Authenticator, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("passerelle-auth-{name}-{}.json", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, serde_json::json!({ "keys": keys }).to_string()).unwrap();
        let mut config = Config::for_database("sqlite://never-opened.db");
        config.jwt_jwks = Some(path.display().to_string());
        (Authenticator::from_config(&config).await.unwrap(), path)
    }

    /// A token verified once is answered from the cache, until its `exp` (with the leeway) has
    /// passed: then it is refused as expired, as `jsonwebtoken` would refuse it.
    #[tokio::test]
    async fn a_verified_token_is_kept_until_it_expires() {
        let (auth, path) = with_jwks("expiry", &fixture_keys()).await;
        let now = jsonwebtoken::get_current_timestamp();
        let exp = i64::try_from(now).unwrap() + 300;
        let token = rs256_token(exp);
        assert_eq!(auth.verify_at(&token, now).await.unwrap().org, "cms-a");
        assert_eq!(auth.verified.len(), 1);
        assert_eq!(
            auth.verify_at(&token, now + 300 + LEEWAY_SECONDS).await.unwrap().sub,
            "clerk-1"
        );
        let late = auth.verify_at(&token, now + 301 + LEEWAY_SECONDS).await.unwrap_err();
        assert!(matches!(
            late,
            ApiError::Unauthorized {
                en: "The token has expired.",
                ..
            }
        ));
        assert_eq!(auth.verified.len(), 0, "an expired token is dropped");
        // Tokens refused are never kept: a forged one cannot fill the cache.
        let mut forged = token.clone();
        forged.replace_range(forged.len() - 4.., "AAAA");
        assert!(auth.verify(&forged).await.is_err());
        assert_eq!(auth.verified.len(), 0);
        let _ = std::fs::remove_file(path);
    }

    /// A key the JWKS no longer lists verifies nothing from the reload on, though tokens it
    /// signed were verified (and kept) before.
    #[tokio::test]
    async fn a_reload_without_the_key_refuses_its_kept_tokens() {
        let (auth, path) = with_jwks("reload", &fixture_keys()).await;
        let token = rs256_token(i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap() + 300);
        assert!(auth.verify(&token).await.is_ok());
        assert!(auth.verify(&token).await.is_ok());
        let others: Vec<serde_json::Value> = fixture_keys()
            .into_iter()
            .filter(|k| k["kid"] != "test-rs256")
            .collect();
        std::fs::write(&path, serde_json::json!({ "keys": others }).to_string()).unwrap();
        auth.refresh().await.unwrap();
        let refused = auth.verify(&token).await.unwrap_err();
        assert!(matches!(refused, ApiError::Unauthorized { .. }));
        let _ = std::fs::remove_file(path);
    }

    const DEV_SECRET: &str = "unit-test-secret-unit-test-secret-0123";

    /// An authenticator with the HS256 development secret and the fixture JWKS.
    async fn with_secret(name: &str) -> (Authenticator, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!("passerelle-auth-{name}-{}.json", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, serde_json::json!({ "keys": fixture_keys() }).to_string()).unwrap();
        let mut config = Config::for_database("sqlite://never-opened.db");
        config.jwt_jwks = Some(path.display().to_string());
        config.jwt_hs256_secret = Some(Secret::new(DEV_SECRET));
        (Authenticator::from_config(&config).await.unwrap(), path)
    }

    fn good_claims() -> serde_json::Value {
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap();
        let config = Config::for_database("sqlite://never-opened.db");
        serde_json::json!({"sub": "clerk-1", "org": "cms-a", "scope": "eligibility:check",
            "iss": config.jwt_issuer, "aud": config.jwt_audience, "exp": now + 600, "nbf": now - 5, "iat": now - 5})
    }

    fn hs256_with(header: Header, claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(DEV_SECRET.as_bytes())).unwrap()
    }

    /// API.md §2: `nbf` is checked, and RFC 7519's NumericDate may be non-integer. A fraction in
    /// range is read; a `nbf` no clock reaches (1e300) leaves the token not valid yet, even though
    /// `jsonwebtoken` itself skips a `nbf` it cannot read as an unsigned integer.
    #[tokio::test]
    async fn numeric_dates_in_fractions_are_read_and_an_unreachable_nbf_is_refused() {
        let (auth, path) = with_secret("nbf").await;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let mut fractions = good_claims();
        fractions["exp"] = serde_json::json!(now + 600.5);
        fractions["nbf"] = serde_json::json!(now - 10.25);
        let claims = auth
            .verify(&hs256_with(Header::new(Algorithm::HS256), &fractions))
            .await
            .unwrap();
        assert!(claims.exp >= now as i64 + 600, "exp read to the second: {}", claims.exp);
        let mut never = good_claims();
        never["nbf"] = serde_json::json!(1e300);
        let refused = auth.verify(&hs256_with(Header::new(Algorithm::HS256), &never)).await;
        assert!(matches!(refused, Err(ApiError::Unauthorized { .. })), "{refused:?}");
        let _ = std::fs::remove_file(path);
    }

    /// API.md §2: the HS256 secret verifies tokens that name no JWKS key; a `kid` names a key of
    /// the JWKS, and one it does not list verifies nothing (401), whatever the algorithm. A
    /// header with `crit` is refused; the subject is 1 to 255 characters.
    #[tokio::test]
    async fn the_dev_secret_verifies_only_tokens_without_a_kid() {
        let (auth, path) = with_secret("hs256").await;
        let good = good_claims();
        assert_eq!(
            auth.verify(&hs256_with(Header::new(Algorithm::HS256), &good))
                .await
                .unwrap()
                .org,
            "cms-a"
        );
        let mut unknown_kid = Header::new(Algorithm::HS256);
        unknown_kid.kid = Some("nobody".into());
        assert!(auth.verify(&hs256_with(unknown_kid, &good)).await.is_err());
        let mut jwks_kid = Header::new(Algorithm::HS256);
        jwks_kid.kid = Some("test-rs256".into());
        assert!(auth.verify(&hs256_with(jwks_kid, &good)).await.is_err());
        // The same token with `crit` in its header, signed with the same secret.
        let crit = {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let head = b64.encode(serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}).to_string());
            let body = b64.encode(good.to_string());
            let input = format!("{head}.{body}");
            let signature = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(DEV_SECRET.as_bytes()),
                Algorithm::HS256,
            )
            .unwrap();
            format!("{input}.{signature}")
        };
        assert!(auth.verify(&crit).await.is_err());
        for (sub, accepted) in [
            (" ".to_owned(), false),
            ("s".repeat(256), false),
            ("é".repeat(255), true),
            ("s".into(), true),
        ] {
            let mut c = good_claims();
            c["sub"] = serde_json::json!(sub);
            let verified = auth.verify(&hs256_with(Header::new(Algorithm::HS256), &c)).await;
            assert_eq!(verified.is_ok(), accepted, "sub of {} characters", sub.chars().count());
        }
        let _ = std::fs::remove_file(path);
    }

    /// API.md §2: the JWKS gives RS256, ES256 and EdDSA keys. A P-384 key, an OKP key on another
    /// curve, and a key whose `alg` contradicts its type are not signing keys this service uses.
    #[test]
    fn a_jwks_keeps_no_key_of_another_curve_or_a_contradicting_alg() {
        let keys = fixture_keys();
        let by_kid = |kid: &str| keys.iter().find(|k| k["kid"] == kid).unwrap().clone();
        let p384 = serde_json::json!({"kty": "EC", "kid": "p384", "crv": "P-384", "use": "sig",
            "x": "s_unqCGv8KpVBVNZMvRTPK8YZk3Gr3cmjqlcQevEOOtLC0YiCR3sCdauuyXejSm1",
            "y": "BHkmari-R9JBHOPqQyRw9fpry8DsqcJcROvJkgCuymdIicNyjPjTEmWAUo7qcrOU"});
        let mut okp_p256 = by_kid("test-eddsa");
        okp_p256["kid"] = serde_json::json!("okp-p256");
        okp_p256["crv"] = serde_json::json!("P-256");
        okp_p256.as_object_mut().unwrap().remove("alg");
        let mut contradicting = Vec::new();
        for (kid, alg) in [
            ("test-es256", "RS256"),
            ("test-rs256", "ES256"),
            ("test-rs256", "EdDSA"),
        ] {
            let mut key = by_kid(kid);
            key["kid"] = serde_json::json!(format!("{kid}-as-{alg}"));
            key["alg"] = serde_json::json!(alg);
            contradicting.push(key);
        }
        for key in [p384, okp_p256].into_iter().chain(contradicting) {
            let kid = key["kid"].as_str().unwrap().to_owned();
            let parsed = parse_jwks(&serde_json::json!({ "keys": [key] }).to_string()).unwrap();
            assert!(parsed.is_empty(), "{kid} kept");
        }
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("1h"), Some(3600));
        assert_eq!(parse_ttl("90"), Some(90));
        assert_eq!(parse_ttl("15m"), Some(900));
        assert_eq!(parse_ttl("2d"), Some(172_800));
        assert_eq!(parse_ttl("0h"), None);
        assert_eq!(parse_ttl("1y"), None);
        assert_eq!(parse_ttl("400d"), None);
    }
}
