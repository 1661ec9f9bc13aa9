//! The ciphers: AES-256-GCM (RustCrypto's `aes-gcm`) for personal values
//! under a data key and for data keys under a master key.
//!
//! A personal value is sealed with a synthetic nonce (an HMAC of the value
//! under a key derived from the data key), so one value sealed twice for
//! one user gives one ciphertext: a profile update that repeats the current
//! name is still recognised as no change. Nonces can then only repeat for
//! one and the same plaintext, which GCM tolerates; across users and
//! fields nothing repeats (the keys differ, and the field and user are the
//! associated data, so a value cannot be moved to another user or field).

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::StoreError;

/// Bytes of a nonce.
const NONCE: usize = 12;
/// The format byte in front of every sealed value.
const FORMAT_1: u8 = 1;

type HmacSha256 = Hmac<Sha256>;

/// 32 random bytes, wiped from memory when dropped.
pub(crate) type KeyBytes = Zeroizing<[u8; 32]>;

/// Fresh random key bytes.
pub(crate) fn random_key() -> KeyBytes {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::thread_rng().fill_bytes(key.as_mut());
    key
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn broken(what: &str) -> StoreError {
    StoreError::Protection(format!(
        "{what} cannot be opened: wrong key or altered bytes"
    ))
}

/// One user's data key, with the two keys derived from it.
pub(crate) struct DataKey {
    raw: KeyBytes,
    cipher: Aes256Gcm,
    nonce_key: KeyBytes,
}

impl DataKey {
    pub(crate) fn new(bytes: &[u8; 32]) -> Self {
        let enc = Zeroizing::new(hmac(bytes, &[b"shopstream data key: encryption"]));
        let nonce_key = Zeroizing::new(hmac(bytes, &[b"shopstream data key: nonce"]));
        Self {
            raw: Zeroizing::new(*bytes),
            cipher: Aes256Gcm::new(enc.as_ref().into()),
            nonce_key,
        }
    }

    /// The key itself (the e-mail index uses it as its HMAC key).
    pub(crate) fn raw(&self) -> &[u8; 32] {
        &self.raw
    }

    /// `plain` sealed for `subject`'s `field`: base64url of format ‖ nonce
    /// ‖ ciphertext ‖ tag.
    pub(crate) fn seal(&self, subject: &str, field: &str, plain: &[u8]) -> String {
        let aad = associated(subject, field);
        let synthetic = hmac(self.nonce_key.as_ref(), &[&aad, plain]);
        let nonce = Nonce::from_slice(&synthetic[..NONCE]);
        let sealed = self
            .cipher
            .encrypt(
                nonce,
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            // Only fails for plaintexts beyond GCM's 64 GiB bound.
            .unwrap_or_else(|_| unreachable!());
        let mut out = Vec::with_capacity(1 + NONCE + sealed.len());
        out.push(FORMAT_1);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plain bytes of a value [`DataKey::seal`]ed for `subject`'s `field`.
    ///
    /// # Errors
    /// [`StoreError::Protection`] for bytes this key did not seal there.
    pub(crate) fn open(
        &self,
        subject: &str,
        field: &str,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| broken(field))?;
        let (format, rest) = bytes.split_first().ok_or_else(|| broken(field))?;
        if *format != FORMAT_1 || rest.len() < NONCE + 16 {
            return Err(broken(field));
        }
        let (nonce, body) = rest.split_at(NONCE);
        let aad = associated(subject, field);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| broken(field))
    }
}

fn associated(subject: &str, field: &str) -> Vec<u8> {
    format!("shopstream personal v1\0{subject}\0{field}").into_bytes()
}

/// A master key: wraps data keys; lives in a file, never in the database.
pub(crate) struct MasterKey {
    /// A fingerprint naming the key in `data_keys.master_key`.
    pub id: String,
    pub bytes: KeyBytes,
    cipher: Aes256Gcm,
}

impl MasterKey {
    pub(crate) fn new(bytes: KeyBytes) -> Self {
        let digest = Sha256::new()
            .chain_update(b"shopstream master key id\0")
            .chain_update(bytes.as_ref())
            .finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            id,
            cipher: Aes256Gcm::new(bytes.as_ref().into()),
            bytes,
        }
    }

    /// `key` wrapped for `subject` (random nonce): base64url.
    pub(crate) fn wrap(&self, subject: &str, key: &[u8; 32]) -> String {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = wrapping(subject);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: &aad,
                },
            )
            .unwrap_or_else(|_| unreachable!());
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The key [`MasterKey::wrap`] wrapped for `subject`.
    ///
    /// # Errors
    /// [`StoreError::Protection`] when this master did not wrap it.
    pub(crate) fn unwrap_key(&self, subject: &str, wrapped: &str) -> Result<KeyBytes, StoreError> {
        let what = || broken(&format!("the data key of {subject}"));
        let bytes = URL_SAFE_NO_PAD.decode(wrapped).map_err(|_| what())?;
        if bytes.len() != NONCE + 32 + 16 {
            return Err(what());
        }
        let (nonce, body) = bytes.split_at(NONCE);
        let aad = wrapping(subject);
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: body,
                        aad: &aad,
                    },
                )
                .map_err(|_| what())?,
        );
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

fn wrapping(subject: &str) -> Vec<u8> {
    format!("shopstream data key v1\0{subject}").into_bytes()
}

/// The keyed hash of an e-mail address (hex), what `user_emails` holds.
pub(crate) fn email_digest(index_key: &[u8; 32], email: &str) -> String {
    hmac(index_key, &[b"shopstream e-mail index\0", email.as_bytes()])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_its_key_for_its_user_and_field() {
        let key = DataKey::new(&random_key());
        let sealed = key.seal("u1", "email", b"\"ada@example.com\"");
        assert!(!sealed.contains("ada"));
        assert_eq!(
            key.open("u1", "email", &sealed).unwrap().as_slice(),
            b"\"ada@example.com\""
        );
        // Deterministic for one user and field, so "unchanged" stays visible.
        assert_eq!(sealed, key.seal("u1", "email", b"\"ada@example.com\""));
        assert_ne!(sealed, key.seal("u2", "email", b"\"ada@example.com\""));
        assert!(key.open("u2", "email", &sealed).is_err());
        assert!(key.open("u1", "name", &sealed).is_err());
        assert!(DataKey::new(&random_key())
            .open("u1", "email", &sealed)
            .is_err());
        let mut tampered = sealed.into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(key.open("u1", "email", &tampered).is_err());
        assert!(key.open("u1", "email", "not base64!").is_err());
        assert!(key.open("u1", "email", "").is_err());
    }

    #[test]
    fn data_keys_unwrap_only_with_their_master_and_subject() {
        let master = MasterKey::new(random_key());
        let other = MasterKey::new(random_key());
        assert_ne!(master.id, other.id);
        assert_eq!(master.id.len(), 16);
        let key = random_key();
        let wrapped = master.wrap("u1", &key);
        assert_eq!(
            master.unwrap_key("u1", &wrapped).unwrap().as_ref(),
            key.as_ref()
        );
        assert!(master.unwrap_key("u2", &wrapped).is_err());
        assert!(other.unwrap_key("u1", &wrapped).is_err());
        assert_ne!(wrapped, master.wrap("u1", &key), "random nonces");
    }

    #[test]
    fn the_email_digest_is_keyed() {
        let (a, b) = (random_key(), random_key());
        let d = email_digest(&a, "ada@example.com");
        assert_eq!(d.len(), 64);
        assert!(!d.contains('@'));
        assert_eq!(d, email_digest(&a, "ada@example.com"));
        assert_ne!(d, email_digest(&b, "ada@example.com"));
        assert_ne!(d, email_digest(&a, "bob@example.com"));
    }
}
