//! Password hashing with argon2id at OWASP's recommended cost
//! (19 MiB, 2 iterations, 1 lane).
//!
//! Hashing is deliberately slow, so it runs on the blocking pool and never
//! stalls the async runtime. `verify_or_dummy` hashes even when the account
//! does not exist, so login time does not reveal which emails are registered.

use std::sync::LazyLock;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use rand::RngCore;

use platform::AppError;

const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    // The parameters are constants within argon2's documented bounds.
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A valid hash of a password nobody knows, verified against when the
/// account is unknown.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("dummy password for timing 1").unwrap_or_default());

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
}

fn verify_blocking(password: &str, encoded: &str) -> bool {
    PasswordHash::new(encoded)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) of `password`.
pub async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(|err| AppError::internal("joining the hashing task", err))?
        .map_err(|err| AppError::internal("hashing a password", err.to_string()))
}

/// Whether `password` matches `encoded`; with no stored hash, spends the
/// same time on a dummy and answers false.
pub async fn verify_or_dummy(password: String, encoded: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || match encoded {
        Some(encoded) => verify_blocking(&password, &encoded),
        None => {
            verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .map_err(|err| AppError::internal("joining the hashing task", err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let encoded = hash("correct horse 1".into()).await.unwrap();
        assert!(
            encoded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{encoded}"
        );
        assert!(
            verify_or_dummy("correct horse 1".into(), Some(encoded.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_or_dummy("wrong horse 1".into(), Some(encoded))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn two_hashes_of_one_password_differ_by_salt() {
        let a = hash("same password 1".into()).await.unwrap();
        let b = hash("same password 1".into()).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn unknown_accounts_and_garbage_hashes_never_verify() {
        assert!(!verify_or_dummy("anything 1".into(), None).await.unwrap());
        assert!(
            !verify_or_dummy("anything 1".into(), Some("not a hash".into()))
                .await
                .unwrap()
        );
    }
}
