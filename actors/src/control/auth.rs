//! HMAC-SHA256 challenge–response over a shared secret: how a TCP control client (and,
//! later, a raft peer) proves it holds the secret without sending it.
//!
//! The server sends a fresh random [`challenge`]; the client answers with
//! [`respond`]`(secret, nonce)`; the server checks it with [`verify`], which compares in
//! constant time (`hmac`'s `verify_slice`). A nonce is used for one connection only, so a
//! recorded answer cannot be replayed. [`Secret`] never prints its bytes.
//!
//! ```
//! use vortex_actors::control::auth::{challenge, respond, verify, Secret};
//!
//! let secret = Secret::new(b"correct horse battery staple".to_vec()).unwrap();
//! let nonce = challenge();
//! let mac = respond(&secret, &nonce);
//! assert!(verify(&secret, &nonce, &mac).is_ok());
//! let wrong = Secret::new(b"wrong".to_vec()).unwrap();
//! assert!(verify(&wrong, &nonce, &mac).is_err());
//! assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
//! ```

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of a challenge nonce.
pub const NONCE_BYTES: usize = 32;

/// Domain separation: a MAC made for this protocol means nothing elsewhere.
const CONTEXT: &[u8] = b"nexa-vortex control v1\0";

type HmacSha256 = Hmac<Sha256>;

/// Why a secret could not be loaded or an answer was refused. No variant holds the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The environment variable is not set (or not valid UTF-8).
    #[error("the secret variable {0} is not set")]
    SecretVariable(String),
    /// The secret is empty (after trimming a trailing newline).
    #[error("the secret is empty")]
    EmptySecret,
    /// The answer does not match the challenge under this secret.
    #[error("wrong answer to the challenge")]
    Refused,
}

/// A shared secret. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A secret from bytes; empty is an error.
    pub fn new(bytes: Vec<u8>) -> Result<Secret, AuthError> {
        if bytes.is_empty() {
            return Err(AuthError::EmptySecret);
        }
        Ok(Secret(bytes))
    }

    /// The contents of `path`, without one trailing newline (`\n` or `\r\n`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Secret, AuthError> {
        let path = path.as_ref();
        let mut bytes = std::fs::read(path).map_err(|source| AuthError::SecretFile {
            path: path.to_owned(),
            source,
        })?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Secret::new(bytes)
    }

    /// The value of the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Secret, AuthError> {
        let value = std::env::var(name).map_err(|_| AuthError::SecretVariable(name.to_owned()))?;
        Secret::new(value.into_bytes())
    }

    fn mac(&self, nonce: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any size");
        mac.update(CONTEXT);
        mac.update(nonce);
        mac
    }
}

/// A fresh random nonce from the operating system.
pub fn challenge() -> Vec<u8> {
    let mut nonce = vec![0u8; NONCE_BYTES];
    getrandom::getrandom(&mut nonce).expect("the operating system's random source");
    nonce
}

/// The answer to `nonce` under `secret`: HMAC-SHA256 (32 bytes).
pub fn respond(secret: &Secret, nonce: &[u8]) -> Vec<u8> {
    secret.mac(nonce).finalize().into_bytes().to_vec()
}

/// Checks `answer` against `nonce` under `secret`, in constant time.
pub fn verify(secret: &Secret, nonce: &[u8], answer: &[u8]) -> Result<(), AuthError> {
    secret
        .mac(nonce)
        .verify_slice(answer)
        .map_err(|_| AuthError::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_bind_secret_and_nonce() {
        let secret = Secret::new(b"s3cret".to_vec()).unwrap();
        let (first, second) = (challenge(), challenge());
        assert_ne!(first, second);
        let mac = respond(&secret, &first);
        assert_eq!(mac.len(), 32);
        assert!(verify(&secret, &first, &mac).is_ok());
        assert!(verify(&secret, &second, &mac).is_err());
        assert!(verify(&secret, &first, &mac[..31]).is_err());
        assert!(verify(&secret, &first, &[]).is_err());
    }

    #[test]
    fn a_secret_file_loses_its_trailing_newline_and_empty_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("secret");
        std::fs::write(&path, "abc\r\n").unwrap();
        let secret = Secret::from_file(&path).unwrap();
        assert_eq!(secret.0, b"abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            Secret::from_file(&path),
            Err(AuthError::EmptySecret)
        ));
        assert!(matches!(
            Secret::from_file(directory.path().join("missing")),
            Err(AuthError::SecretFile { .. })
        ));
    }
}
