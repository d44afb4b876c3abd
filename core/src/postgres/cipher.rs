//! Tokens at rest: how [`PgStore`](super::PgStore) turns token text into
//! what the table holds, and back.
//!
//! The scheme is documented on [`TokensAtRest`], where users read it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::LinkId;

type HmacSha256 = Hmac<Sha256>;

/// What the table holds for a sealed token starts with this.
const SEALED_PREFIX: &str = "bt1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const ENCRYPTION_LABEL: &[u8] = b"baton-core token encryption v1";
const HASH_LABEL: &[u8] = b"baton-core token guard hash v1";

/// How [`PgStore`](super::PgStore) keeps token text in the table. There is
/// no default: plaintext is a choice a service names.
///
/// The scheme, after Coder's `dbcrypt`:
///
/// - **Sealed**: each token column (`access_token`, `refresh_token`,
///   `lease_presenting`) holds `bt1:<key id>:<base64url(nonce ‖ ciphertext
///   ‖ tag)>`, XChaCha20-Poly1305 with a random 192-bit nonce, the key
///   named beside the ciphertext. The associated data binds the ciphertext
///   to its link and column, so a value copied into another row or column
///   fails to open instead of being served.
/// - **Compared by keyed hash**: a random nonce makes every sealing of the
///   same token different, so the compare-and-swap cannot compare
///   ciphertexts. Beside `refresh_token` and `lease_presenting` the table
///   keeps an HMAC-SHA256 of the token (under a key derived from the same
///   ring key, over the link and the token), and a guard naming a token
///   compares that column against the token's hash under *every* key of the
///   ring. That keeps the write one round trip and linearizable, as in
///   plaintext; a row version would need a read before every write (the
///   machine's guards name values, not versions).
/// - **Rotation**: a ring has one current key, which seals every token
///   written, and old keys, which only open. A row is re-sealed under the
///   current key field by field as the machine rewrites it, or all at once
///   by [`PgStore::reencrypt`](super::PgStore::reencrypt).
///
/// Each ring key is 32 bytes the team generates and keeps (a secrets
/// manager, a KMS-decrypted environment variable); the encryption and hash
/// keys are derived from it with HMAC-SHA256 under fixed labels, so one
/// secret per key id is all there is to store.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TokensAtRest {
    /// Sealed under the ring's current key (see above).
    Encrypted(KeyRing),
    /// As plain text: protect the table like any other credential store.
    /// A row sealed by an encrypted store is refused, not misread.
    Plaintext,
}

/// The keys an encrypted store seals and opens with: one current key and
/// any number of old ones, each under an id stored beside every ciphertext.
///
/// `Debug` shows the key ids, never key material.
#[derive(Clone)]
pub struct KeyRing {
    current: Box<RingKey>,
    old: Vec<RingKey>,
}

#[derive(Clone)]
struct RingKey {
    id: String,
    cipher: XChaCha20Poly1305,
    hash: HmacSha256,
}

/// Why a key could not join a ring. Never holds key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Ids are 1 to 32 characters of `A-Z a-z 0-9 _ . -`, since they are
    /// stored beside every ciphertext and parsed back.
    BadKeyId(String),
    /// Two keys of one ring share an id.
    DuplicateKeyId(String),
    /// A key must be 32 bytes (here, after base64 decoding).
    BadKeyLength {
        /// The key's id.
        id: String,
        /// How many bytes it had.
        found: usize,
    },
    /// The key text is not base64 (standard or URL-safe, padded or not).
    NotBase64 {
        /// The key's id.
        id: String,
    },
}

impl fmt::Display for KeyRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRingError::BadKeyId(id) => write!(
                f,
                "key id {id:?} is not 1 to 32 characters of A-Z, a-z, 0-9, '_', '.', '-'"
            ),
            KeyRingError::DuplicateKeyId(id) => write!(f, "key id {id:?} is in the ring twice"),
            KeyRingError::BadKeyLength { id, found } => {
                write!(f, "key {id:?} is {found} bytes; a ring key is 32 bytes")
            }
            KeyRingError::NotBase64 { id } => write!(f, "key {id:?} is not valid base64"),
        }
    }
}

impl std::error::Error for KeyRingError {}

impl KeyRing {
    /// A ring whose current key is `key`, under `id`.
    pub fn new(id: &str, key: &[u8]) -> Result<KeyRing, KeyRingError> {
        Ok(KeyRing {
            current: Box::new(RingKey::new(id, key)?),
            old: Vec::new(),
        })
    }

    /// [`KeyRing::new`] from the key in base64, as a secrets manager or an
    /// environment variable hands it over (`openssl rand -base64 32`).
    pub fn from_base64(id: &str, key: &str) -> Result<KeyRing, KeyRingError> {
        KeyRing::new(id, &decode_key(id, key)?)
    }

    /// Adds an old key: it opens what it sealed, and seals nothing.
    pub fn with_old_key(mut self, id: &str, key: &[u8]) -> Result<KeyRing, KeyRingError> {
        let key = RingKey::new(id, key)?;
        if self.keys().any(|known| known.id == key.id) {
            return Err(KeyRingError::DuplicateKeyId(key.id));
        }
        self.old.push(key);
        Ok(self)
    }

    /// [`KeyRing::with_old_key`] from the key in base64.
    pub fn with_old_key_base64(self, id: &str, key: &str) -> Result<KeyRing, KeyRingError> {
        let key = decode_key(id, key)?;
        self.with_old_key(id, &key)
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    fn keys(&self) -> impl Iterator<Item = &RingKey> {
        std::iter::once(&*self.current).chain(&self.old)
    }

    fn key(&self, id: &str) -> Option<&RingKey> {
        self.keys().find(|key| key.id == id)
    }

    /// Seals `token`, the value of `column` of `link`'s row, under the
    /// current key.
    pub(super) fn seal(&self, link: &LinkId, column: &'static str, token: &str) -> String {
        let key = &self.current;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(link, column);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: token.as_bytes(),
                    aad: &aad,
                },
            )
            // XChaCha20-Poly1305 fails only on messages beyond 256 GiB.
            .expect("a token is far below XChaCha20-Poly1305's length limit");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(bytes)
        )
    }

    /// Opens what [`KeyRing::seal`] made of `column` of `link`'s row.
    pub(super) fn open(
        &self,
        link: &LinkId,
        column: &'static str,
        stored: &str,
    ) -> Result<String, Unopenable> {
        let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
            return Err(Unopenable::Plaintext);
        };
        let (id, body) = rest.split_once(':').ok_or(Unopenable::Malformed)?;
        let key = self
            .key(id)
            .ok_or_else(|| Unopenable::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Unopenable::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(Unopenable::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(link, column);
        let opened = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| Unopenable::Unauthentic(key.id.clone()))?;
        String::from_utf8(opened).map_err(|_| Unopenable::Malformed)
    }

    /// The guard hashes of `token` in `link`'s row: one per key of the
    /// ring, since the row may hold it hashed under any of them.
    pub(super) fn guard_hashes(&self, link: &LinkId, token: &str) -> Vec<Vec<u8>> {
        self.keys().map(|key| key.hash_of(link, token)).collect()
    }

    /// The guard hash stored beside a token sealed now.
    pub(super) fn current_hash(&self, link: &LinkId, token: &str) -> Vec<u8> {
        self.current.hash_of(link, token)
    }

    /// Whether `stored` was sealed under the current key (so re-sealing
    /// it changes nothing a reader of the table could learn).
    pub(super) fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .is_some_and(|(id, _)| id == self.current.id)
    }

    /// The `LIKE` pattern of values sealed under the current key.
    pub(super) fn current_pattern(&self) -> String {
        // Key ids hold no LIKE metacharacter ('_' aside, which matches
        // itself among others: a pattern too wide only skips a row that is
        // then re-sealed on its next write).
        format!("{SEALED_PREFIX}{}:%", self.current.id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.id)
            .field("old", &self.old.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

impl RingKey {
    fn new(id: &str, key: &[u8]) -> Result<RingKey, KeyRingError> {
        let id_ok = (1..=32).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !id_ok {
            return Err(KeyRingError::BadKeyId(id.to_owned()));
        }
        if key.len() != 32 {
            return Err(KeyRingError::BadKeyLength {
                id: id.to_owned(),
                found: key.len(),
            });
        }
        let derive = |label: &[u8]| {
            let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(label);
            mac.finalize().into_bytes()
        };
        let encryption = derive(ENCRYPTION_LABEL);
        let hash = derive(HASH_LABEL);
        Ok(RingKey {
            id: id.to_owned(),
            cipher: XChaCha20Poly1305::new(Key::from_slice(&encryption)),
            hash: <HmacSha256 as Mac>::new_from_slice(&hash).expect("HMAC takes any key"),
        })
    }

    fn hash_of(&self, link: &LinkId, token: &str) -> Vec<u8> {
        let mut mac = self.hash.clone();
        for part in [link.provider(), link.user(), token] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().to_vec()
    }
}

fn decode_key(id: &str, text: &str) -> Result<Vec<u8>, KeyRingError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
    let text = text.trim();
    [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| KeyRingError::NotBase64 { id: id.to_owned() })
}

/// Binds a ciphertext to its row and column: length-prefixed, so no two
/// (provider, user, column) triples share one.
fn associated_data(link: &LinkId, column: &'static str) -> Vec<u8> {
    let mut aad = b"baton_links".to_vec();
    for part in [link.provider(), link.user(), column] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Why a stored token could not be opened. Never holds the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Unopenable {
    /// An encrypted store found plain text.
    Plaintext,
    /// A plaintext store found a sealed value, under this key id.
    SealedWithoutRing(String),
    /// Sealed under a key id the ring does not hold.
    UnknownKey(String),
    /// The key of that id does not open it: another key under the same
    /// id, or a value altered or moved from another row or column.
    Unauthentic(String),
    /// Starts like a sealed value, and is not one.
    Malformed,
}

impl Unopenable {
    pub(super) fn describe(&self) -> String {
        match self {
            Unopenable::Plaintext => "holds plain text while the store is encrypted \
                 (PgStore::reencrypt seals such rows)"
                .to_owned(),
            Unopenable::SealedWithoutRing(id) => format!(
                "is encrypted under key {id:?} while the store is configured for plaintext \
                 (TokensAtRest::Plaintext)"
            ),
            Unopenable::UnknownKey(id) => {
                format!("is encrypted under key {id:?}, which the key ring does not hold")
            }
            Unopenable::Unauthentic(id) => format!(
                "does not decrypt under key {id:?} (a different key under that id, or a value \
                 altered or copied from another row)"
            ),
            Unopenable::Malformed => "is not a well-formed baton ciphertext".to_owned(),
        }
    }
}

impl TokensAtRest {
    /// The token text `column` of `link`'s row stands for.
    pub(super) fn open(
        &self,
        link: &LinkId,
        column: &'static str,
        stored: String,
    ) -> Result<String, Unopenable> {
        match self {
            TokensAtRest::Encrypted(ring) => ring.open(link, column, &stored),
            TokensAtRest::Plaintext => match stored
                .strip_prefix(SEALED_PREFIX)
                .and_then(|rest| rest.split_once(':'))
            {
                Some((id, _)) => Err(Unopenable::SealedWithoutRing(id.to_owned())),
                None => Ok(stored),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkId {
        LinkId::new("github", "octocat")
    }

    fn ring() -> KeyRing {
        KeyRing::new("k1", &[7; 32]).unwrap()
    }

    #[test]
    fn sealing_round_trips_and_never_repeats() {
        let ring = ring();
        let a = ring.seal(&link(), "refresh_token", "ghr_secret");
        let b = ring.seal(&link(), "refresh_token", "ghr_secret");
        assert_ne!(a, b, "a random nonce makes every sealing differ");
        assert!(a.starts_with("bt1:k1:") && !a.contains("ghr_secret"));
        assert_eq!(
            ring.open(&link(), "refresh_token", &a).unwrap(),
            "ghr_secret"
        );
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_does_not_open() {
        let ring = ring();
        let sealed = ring.seal(&link(), "refresh_token", "ghr_secret");
        let other = LinkId::new("github", "hubot");
        let moved = Unopenable::Unauthentic("k1".into());
        assert_eq!(
            ring.open(&other, "refresh_token", &sealed),
            Err(moved.clone())
        );
        assert_eq!(ring.open(&link(), "lease_presenting", &sealed), Err(moved));
    }

    #[test]
    fn old_keys_open_and_the_current_key_seals() {
        let old = ring().seal(&link(), "access_token", "gho_old");
        let rotated = KeyRing::new("k2", &[9; 32])
            .unwrap()
            .with_old_key("k1", &[7; 32])
            .unwrap();
        assert_eq!(
            rotated.open(&link(), "access_token", &old).unwrap(),
            "gho_old"
        );
        assert!(!rotated.is_current(&old));
        assert!(rotated.is_current(&rotated.seal(&link(), "access_token", "x")));
        let without_k1 = KeyRing::new("k2", &[9; 32]).unwrap();
        assert_eq!(
            without_k1.open(&link(), "access_token", &old),
            Err(Unopenable::UnknownKey("k1".into()))
        );
        let impostor = KeyRing::new("k1", &[8; 32]).unwrap();
        assert_eq!(
            impostor.open(&link(), "access_token", &old),
            Err(Unopenable::Unauthentic("k1".into()))
        );
    }

    #[test]
    fn guard_hashes_cover_every_key_and_depend_on_the_link() {
        let rotated = KeyRing::new("k2", &[9; 32])
            .unwrap()
            .with_old_key("k1", &[7; 32])
            .unwrap();
        let hashes = rotated.guard_hashes(&link(), "ghr_secret");
        assert_eq!(hashes.len(), 2);
        assert!(hashes.contains(&ring().current_hash(&link(), "ghr_secret")));
        assert_ne!(
            rotated.current_hash(&link(), "ghr_secret"),
            rotated.current_hash(&LinkId::new("github", "hubot"), "ghr_secret")
        );
    }

    #[test]
    fn plaintext_and_sealed_values_are_refused_by_the_other_mode() {
        let sealed = ring().seal(&link(), "refresh_token", "ghr_secret");
        let plaintext = TokensAtRest::Plaintext;
        assert_eq!(
            plaintext.open(&link(), "refresh_token", sealed),
            Err(Unopenable::SealedWithoutRing("k1".into()))
        );
        let encrypted = TokensAtRest::Encrypted(ring());
        assert_eq!(
            encrypted.open(&link(), "refresh_token", "ghr_plain".into()),
            Err(Unopenable::Plaintext)
        );
        for broken in ["bt1:k1", "bt1:k1:!!!", "bt1:k1:AAAA"] {
            assert_eq!(
                encrypted.open(&link(), "refresh_token", broken.into()),
                Err(Unopenable::Malformed),
                "{broken}"
            );
        }
    }

    #[test]
    fn rings_refuse_bad_ids_lengths_and_duplicates_without_echoing_keys() {
        assert_eq!(
            KeyRing::new("", &[0; 32]).unwrap_err(),
            KeyRingError::BadKeyId(String::new())
        );
        assert!(KeyRing::new("a:b", &[0; 32]).is_err());
        let short = KeyRing::new("k1", &[0; 16]).unwrap_err();
        assert_eq!(
            short.to_string(),
            "key \"k1\" is 16 bytes; a ring key is 32 bytes"
        );
        assert_eq!(
            ring().with_old_key("k1", &[1; 32]).unwrap_err(),
            KeyRingError::DuplicateKeyId("k1".into())
        );
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbC0zMi1ieXRlcy14eHg="; // 32 bytes
        let ring = KeyRing::from_base64("k1", secret).unwrap();
        assert!(!format!("{ring:?}").contains(secret));
        assert!(matches!(
            KeyRing::from_base64("k1", "not base64!"),
            Err(KeyRingError::NotBase64 { .. })
        ));
    }
}
