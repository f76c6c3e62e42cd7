//! Issuing and verifying the API's JWTs (docs/API.md §3).
//!
//! The algorithm is pinned to HS256: a token whose header names any other
//! algorithm, `none` included, is refused before its signature is looked at.
//! `typ` keeps access and refresh tokens from standing in for each other.
//! Whether the session behind a token is still alive is not decided here but
//! by the auth extractor, which asks the store.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

pub use model::clock::unix_now;
use model::domain::{Role, SessionId, UserId};

use crate::{config::JwtConfig, error::AppError};

pub const ALGORITHM: Algorithm = Algorithm::HS256;

/// Small clock skew allowance for `exp` and `nbf`.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub sid: SessionId,
    pub typ: TokenType,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

/// A signed token and when it stops working.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub claims: Claims,
}

// The token is a bearer credential.
crate::redacted_debug!(IssuedToken);

/// Keys and rules, built once at cold start.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(config: &JwtConfig) -> Self {
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(config.secret_bytes()),
            decoding: DecodingKey::from_secret(config.secret_bytes()),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_ttl,
            refresh_ttl: config.refresh_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// Signs a token of `typ` for `sub` in session `sid`.
    pub fn issue(
        &self,
        sub: &UserId,
        role: Role,
        sid: &SessionId,
        typ: TokenType,
    ) -> Result<IssuedToken, AppError> {
        let now = unix_now();
        let ttl = match typ {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        let claims = Claims {
            sub: *sub,
            role,
            sid: *sid,
            typ,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            jti: ulid::Ulid::new().to_string(),
        };
        self.sign(&claims)
            .map(|token| IssuedToken { token, claims })
    }

    /// Signs arbitrary claims; `issue` is the normal way in.
    pub fn sign(&self, claims: &Claims) -> Result<String, AppError> {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.encoding)
            .map_err(|err| AppError::internal("signing a token", err))
    }

    /// Verifies signature, algorithm, `iss`, `aud`, `exp`, `nbf` and `typ`.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| {
                let reason = match err.kind() {
                    ErrorKind::ExpiredSignature => "Token has expired",
                    ErrorKind::ImmatureSignature => "Token is not valid yet",
                    ErrorKind::InvalidSignature => "Token signature is invalid",
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        "Token algorithm is not accepted"
                    }
                    ErrorKind::InvalidAudience => "Token audience is not accepted",
                    ErrorKind::InvalidIssuer => "Token issuer is not accepted",
                    _ => "Token is malformed",
                };
                AppError::Unauthorized(reason.into())
            })?;
        if data.claims.typ != expected {
            return Err(AppError::Unauthorized(match expected {
                TokenType::Access => "An access token is required".into(),
                TokenType::Refresh => "A refresh token is required".into(),
            }));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use secrecy::SecretString;

    fn config(secret: &str, audience: &str) -> JwtConfig {
        JwtConfig {
            secret: SecretString::from(secret.to_owned()),
            issuer: "social-api".into(),
            audience: audience.into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn user() -> UserId {
        "01HZY00000000000000000000A".parse().unwrap()
    }

    fn sid() -> SessionId {
        "01HZY00000000000000000000B".parse().unwrap()
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(&config(SECRET, "social-app"))
    }

    fn claims_with(edit: impl FnOnce(&mut Claims)) -> Claims {
        let mut claims = keys()
            .issue(&user(), Role::User, &sid(), TokenType::Access)
            .unwrap()
            .claims;
        edit(&mut claims);
        claims
    }

    fn unauthorized(result: Result<Claims, AppError>) -> String {
        match result {
            Err(AppError::Unauthorized(message)) => message,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn an_issued_access_token_verifies_with_every_claim() {
        let issued = keys()
            .issue(&user(), Role::Admin, &sid(), TokenType::Access)
            .unwrap();
        let claims = keys().verify(&issued.token, TokenType::Access).unwrap();
        assert_eq!(claims.sub, user());
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.sid, sid());
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.jti.len(), 26);
    }

    #[test]
    fn tokens_cannot_stand_in_for_each_other() {
        let access = keys()
            .issue(&user(), Role::User, &sid(), TokenType::Access)
            .unwrap()
            .token;
        let refresh = keys()
            .issue(&user(), Role::User, &sid(), TokenType::Refresh)
            .unwrap()
            .token;
        assert!(unauthorized(keys().verify(&access, TokenType::Refresh)).contains("refresh"));
        assert!(unauthorized(keys().verify(&refresh, TokenType::Access)).contains("access"));
    }

    #[test]
    fn alg_none_is_refused() {
        let claims = claims_with(|_| {});
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            unauthorized(keys().verify(&token, TokenType::Access));
        }
    }

    #[test]
    fn other_algorithms_are_refused_even_with_the_right_secret() {
        let claims = claims_with(|_| {});
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = jsonwebtoken::encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap();
            let message = unauthorized(keys().verify(&token, TokenType::Access));
            assert!(message.contains("algorithm"), "{alg:?}: {message}");
        }
    }

    #[test]
    fn expired_and_immature_tokens_are_refused() {
        let now = unix_now();
        let expired = keys().sign(&claims_with(|c| {
            c.iat = now - 3600;
            c.nbf = now - 3600;
            c.exp = now - 60;
        }));
        assert!(
            unauthorized(keys().verify(&expired.unwrap(), TokenType::Access)).contains("expired")
        );
        let future = keys().sign(&claims_with(|c| {
            c.nbf = now + 600;
            c.exp = now + 1200;
        }));
        assert!(
            unauthorized(keys().verify(&future.unwrap(), TokenType::Access))
                .contains("not valid yet")
        );
    }

    #[test]
    fn wrong_audience_or_issuer_is_refused() {
        let other_audience = JwtKeys::new(&config(SECRET, "another-app"))
            .issue(&user(), Role::User, &sid(), TokenType::Access)
            .unwrap()
            .token;
        assert!(
            unauthorized(keys().verify(&other_audience, TokenType::Access)).contains("audience")
        );
        let other_issuer = keys()
            .sign(&claims_with(|c| c.iss = "evil".into()))
            .unwrap();
        assert!(unauthorized(keys().verify(&other_issuer, TokenType::Access)).contains("issuer"));
    }

    #[test]
    fn a_tampered_or_foreign_signature_is_refused() {
        let token = keys()
            .issue(&user(), Role::User, &sid(), TokenType::Access)
            .unwrap()
            .token;
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = claims_with(|c| c.role = Role::Admin);
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert!(
            unauthorized(keys().verify(&parts.join("."), TokenType::Access)).contains("signature")
        );
        let foreign = JwtKeys::new(&config("ffffffffffffffffffffffffffffffff", "social-app"))
            .issue(&user(), Role::User, &sid(), TokenType::Access)
            .unwrap()
            .token;
        unauthorized(keys().verify(&foreign, TokenType::Access));
        unauthorized(keys().verify("not-a-token", TokenType::Access));
        unauthorized(keys().verify("", TokenType::Access));
    }

    #[test]
    fn a_signed_token_whose_subject_is_no_user_id_is_refused() {
        let claims = claims_with(|_| {});
        let mut json = serde_json::to_value(&claims).unwrap();
        json["sub"] = "not-a-ulid".into();
        let token = jsonwebtoken::encode(
            &Header::new(ALGORITHM),
            &json,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(unauthorized(keys().verify(&token, TokenType::Access)).contains("malformed"));
    }

    #[test]
    fn each_token_type_lives_for_its_configured_ttl() {
        let mut config = config(SECRET, "social-app");
        config.access_ttl = Duration::from_secs(123);
        config.refresh_ttl = Duration::from_secs(4567);
        let keys = JwtKeys::new(&config);
        assert_eq!(keys.access_ttl(), config.access_ttl);
        for (typ, ttl) in [
            (TokenType::Access, config.access_ttl),
            (TokenType::Refresh, config.refresh_ttl),
        ] {
            let before = unix_now();
            let issued = keys.issue(&user(), Role::User, &sid(), typ).unwrap();
            let after = unix_now();
            let claims = keys.verify(&issued.token, typ).unwrap();
            assert_eq!(claims, issued.claims, "{typ:?}");
            assert!((before..=after).contains(&claims.iat), "{typ:?}");
            assert_eq!(claims.nbf, claims.iat, "{typ:?}");
            assert_eq!(claims.exp, claims.iat + ttl.as_secs(), "{typ:?}");
        }
    }

    #[test]
    fn debug_shows_issuer_and_audience_but_never_the_secret() {
        let printed = format!("{:?}", keys());
        assert!(printed.starts_with("JwtKeys"), "{printed}");
        assert!(printed.contains("social-api"), "{printed}");
        assert!(printed.contains("social-app"), "{printed}");
        let bytes = format!("{:?}", SECRET.as_bytes());
        for secret in [
            SECRET.to_owned(),
            bytes.trim_matches(['[', ']']).to_owned(),
            URL_SAFE_NO_PAD.encode(SECRET),
            base64::engine::general_purpose::STANDARD.encode(SECRET),
        ] {
            assert!(!printed.contains(&secret), "{printed}");
        }
    }
}
