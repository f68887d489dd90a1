//! Password hashing: argon2id with a per-account salt, in PHC form. The parameters are chosen so
//! one sign-in costs about 50-300 ms on a 2-core office PC (BENCHMARKS.md): slow for a guesser,
//! bearable for a person. A sign-in for a login nobody has verifies against a dummy hash with the
//! same parameters, so the answer's timing does not say whether the account exists.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// argon2id memory cost, in KiB (19 MiB: OWASP's first recommended setting).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes over the memory.
pub const ITERATIONS: u32 = 2;
/// argon2id lanes: one, so a burst of sign-ins shares the cores instead of each taking all.
pub const LANES: u32 = 1;

pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Letters and digits people do not confuse (no 0/O, 1/l/I), for generated passwords.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error(
        "a password has {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters and no control \
         characters"
    )]
    Unacceptable,
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .map_err(|error| PasswordError::Hashing(error.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Whether a new password is acceptable.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    let length = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length)
        && !password.chars().any(char::is_control)
    {
        Ok(())
    } else {
        Err(PasswordError::Unacceptable)
    }
}

/// The PHC hash of `password` with `salt` (16 random bytes the caller drew for this account).
pub fn hash_password(password: &str, salt: &[u8; 16]) -> Result<String, PasswordError> {
    let salt =
        SaltString::encode_b64(salt).map_err(|error| PasswordError::Hashing(error.to_string()))?;
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| PasswordError::Hashing(error.to_string()))
}

/// Whether `password` matches `stored` (a PHC hash). An unreadable hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(hasher) = hasher() else {
        return false;
    };
    hasher.verify_password(password.as_bytes(), &parsed).is_ok()
}

/// A hash no password is expected to match, with the same parameters as real ones: what a
/// sign-in for an unknown login is verified against.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("no account has this password", &[0x5a; 16]).unwrap_or_default()
    })
}

/// A password of 16 characters from `random` (at least 16 random bytes), ~93 bits.
pub fn generated_password(random: &[u8]) -> String {
    random
        .iter()
        .take(16)
        .map(|byte| {
            let index = usize::from(*byte) % PASSWORD_ALPHABET.len();
            char::from(PASSWORD_ALPHABET[index])
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_salts_differ() {
        let first = hash_password("correct horse battery", &[1; 16]).unwrap();
        let second = hash_password("correct horse battery", &[2; 16]).unwrap();
        assert!(
            first.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{first}"
        );
        assert_ne!(first, second);
        assert!(verify_password("correct horse battery", &first));
        assert!(verify_password("correct horse battery", &second));
        assert!(!verify_password("correct horse batterz", &first));
        assert!(!verify_password("correct horse battery", "not a hash"));
        assert!(!verify_password("correct horse battery", dummy_hash()));
        assert!(dummy_hash().starts_with("$argon2id$"));
    }

    #[test]
    fn new_passwords_are_checked_and_generated_ones_pass() {
        assert!(check_new_password("short").is_err());
        assert!(check_new_password("long enough\n").is_err());
        assert!(check_new_password("long enough").is_ok());
        let generated =
            generated_password(&[7u8, 200, 13, 99, 0, 255, 31, 64, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(generated.chars().count(), 16);
        assert!(check_new_password(&generated).is_ok());
    }
}
