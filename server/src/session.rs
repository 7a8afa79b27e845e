//! Signed session cookies: the proof that a browser bound a user `id`.
//!
//! A cookie names the `id` and the [`Binding`] it was issued for, signed with HMAC-SHA256 under
//! the server's secret, so any instance that shares the secret can check it without state. The
//! binding is a fresh random token each time an `id` goes from free to held: once the `id` is
//! free again and someone else binds it, cookies of the earlier binding stop matching.

use app::protocol::UserId;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::{fmt, io, path::Path, sync::Arc};

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "ssechat_session";

/// Minimum secret length: HMAC-SHA256 keys shorter than its block's security level are weak.
const MIN_SECRET_BYTES: usize = 32;

/// A random token identifying one binding of an `id` to one browser.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding([u8; 16]);

impl Binding {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The text form kept in a shared store, so that every instance can check cookies.
    pub fn to_text(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    pub fn from_text(text: &str) -> Option<Self> {
        URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok().map(Self)
    }
}

impl fmt::Debug for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bindings are bearer secrets in a cookie: keep them out of logs.
        f.write_str("Binding(..)")
    }
}

/// What a valid cookie proves: this browser bound `id` under `binding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: UserId,
    pub binding: Binding,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("session secret must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("cannot read or create the session key file: {0}")]
    Io(#[from] io::Error),
}

/// The server's signing key, and how its cookies are marked. Cloning is shallow.
#[derive(Clone)]
pub struct SessionKey {
    key: Arc<[u8]>,
    /// Adds `Secure` to the cookie: only when browsers reach the chat over HTTPS, since a
    /// browser drops a `Secure` cookie set over plain HTTP.
    secure_cookie: bool,
}

impl SessionKey {
    pub fn from_secret(secret: &[u8]) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        Ok(Self { key: secret.into(), secure_cookie: false })
    }

    /// Reads the secret from a file (all of it, but for one trailing newline that an editor
    /// or `echo` adds), so that it never appears on a command line.
    pub fn from_secret_file(path: &Path) -> Result<Self, SecretError> {
        let bytes = std::fs::read(path)?;
        let secret = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
        Self::from_secret(secret)
    }

    /// Marks the cookies this key issues `Secure` (or not).
    pub fn with_secure_cookie(mut self, secure: bool) -> Self {
        self.secure_cookie = secure;
        self
    }

    /// Reads the key kept at `path`, creating it with 32 random bytes on first start, so that
    /// sessions survive a restart.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::from_secret(&bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                let mut bytes = [0u8; MIN_SECRET_BYTES];
                rand::thread_rng().fill_bytes(&mut bytes);
                write_private(path, &bytes)?;
                Self::from_secret(&bytes)
            }
            Err(error) => Err(error.into()),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC accepts any key length")
    }

    /// Signs arbitrary bytes (also used for `/users` cursors).
    pub fn sign(&self, payload: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(payload);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks a signature made by [`Self::sign`] in constant time.
    pub fn verify(&self, payload: &[u8], signature: &str) -> bool {
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else { return false };
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(&signature).is_ok()
    }

    /// The cookie value for a session: `id.binding.signature`. `id` holds no dots.
    pub fn encode(&self, session: &Session) -> String {
        let payload = format!("{}.{}", session.id, session.binding.to_text());
        let signature = self.sign(payload.as_bytes());
        format!("{payload}.{signature}")
    }

    /// Parses and checks a cookie value; `None` for anything forged, tampered or malformed.
    pub fn decode(&self, value: &str) -> Option<Session> {
        let (payload, signature) = value.rsplit_once('.')?;
        if !self.verify(payload.as_bytes(), signature) {
            return None;
        }
        let (id, binding) = payload.split_once('.')?;
        Some(Session { id: UserId::parse(id).ok()?, binding: Binding::from_text(binding)? })
    }

    /// The `Set-Cookie` header value that binds this browser.
    pub fn set_cookie_header(&self, session: &Session) -> String {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        format!("{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/{secure}", self.encode(session))
    }

    /// Finds and checks the session cookie among a request's `Cookie` headers.
    pub fn from_headers(&self, headers: &http::HeaderMap) -> Option<Session> {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE_NAME)
            .find_map(|(_, value)| self.decode(value))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SessionKey {
        SessionKey::from_secret(&[7u8; 32]).unwrap()
    }

    fn session() -> Session {
        Session { id: UserId::parse("alice").unwrap(), binding: Binding::random() }
    }

    #[test]
    fn a_cookie_round_trips() {
        let session = session();
        assert_eq!(key().decode(&key().encode(&session)), Some(session));
    }

    #[test]
    fn a_tampered_cookie_is_refused() {
        let cookie = key().encode(&session());
        let forged = cookie.replacen("alice", "mallory", 1);
        assert_eq!(key().decode(&forged), None);
        let other_key = SessionKey::from_secret(&[8u8; 32]).unwrap();
        assert_eq!(other_key.decode(&cookie), None);
        assert_eq!(key().decode("alice.AAAA.AAAA"), None);
        assert_eq!(key().decode(""), None);
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(SessionKey::from_secret(b"short"), Err(SecretError::TooShort)));
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.key");
        let first = SessionKey::load_or_create(&path).unwrap();
        let second = SessionKey::load_or_create(&path).unwrap();
        let cookie = first.encode(&session());
        assert!(second.decode(&cookie).is_some());
    }

    #[test]
    fn a_secret_file_gives_the_same_key_as_the_secret_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let secret = "x".repeat(40);
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        let from_file = SessionKey::from_secret_file(&path).unwrap();
        let cookie = key_from(&secret).encode(&session());
        assert!(from_file.decode(&cookie).is_some(), "the trailing newline is not part of the secret");
        std::fs::write(&path, "short\n").unwrap();
        assert!(matches!(SessionKey::from_secret_file(&path), Err(SecretError::TooShort)));
        assert!(matches!(SessionKey::from_secret_file(&dir.path().join("none")), Err(SecretError::Io(_))));
    }

    fn key_from(secret: &str) -> SessionKey {
        SessionKey::from_secret(secret.as_bytes()).unwrap()
    }

    #[test]
    fn the_cookie_is_secure_only_when_asked() {
        let plain = key().set_cookie_header(&session());
        assert!(!plain.contains("Secure"), "{plain}");
        let secure = key().with_secure_cookie(true).set_cookie_header(&session());
        assert!(secure.ends_with("; Secure") && secure.contains("HttpOnly; SameSite=Strict"), "{secure}");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let session = session();
        let mut headers = http::HeaderMap::new();
        let value = format!("a=b; {COOKIE_NAME}={}; c=d", key().encode(&session));
        headers.insert(http::header::COOKIE, value.parse().unwrap());
        assert_eq!(key().from_headers(&headers), Some(session));
    }
}
