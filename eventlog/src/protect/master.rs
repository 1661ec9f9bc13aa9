//! The master keys and their file: one base64url key per line, the first
//! the current one (it wraps new data keys), the others older ones kept so
//! that data keys they wrapped still open until `keys rotate` re-wraps them.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use zeroize::Zeroizing;

use super::cipher::{random_key, MasterKey};
use crate::StoreError;

const HEADER: &str = "# shopstream data protection master keys: the first line is current; \
                      older keys only open data keys they wrapped. Keep this file secret.\n";

/// The master keys of a process.
pub struct MasterKeys {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKeys")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

fn bad_file(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Protection(format!(
        "data protection key file {}: {why}",
        path.display()
    ))
}

impl MasterKeys {
    /// One fresh random master key (tests, and the first start).
    pub fn generate() -> Self {
        Self {
            keys: vec![MasterKey::new(random_key())],
        }
    }

    /// The keys of a file's text.
    ///
    /// # Errors
    /// Which line is not 32 bytes of base64url, or that there is no key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            // Padding is allowed (`openssl rand -base64 32 | tr '+/' '-_'`).
            let line = line.trim().trim_end_matches('=');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = Zeroizing::new(
                URL_SAFE_NO_PAD
                    .decode(line)
                    .map_err(|_| format!("line {} is not base64url", n + 1))?,
            );
            let mut key = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(format!("line {} is not a 32-byte key", n + 1));
            }
            key.copy_from_slice(&bytes);
            keys.push(MasterKey::new(key));
        }
        if keys.is_empty() {
            return Err("holds no key".into());
        }
        Ok(Self { keys })
    }

    /// The file's text.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(HEADER.to_string());
        for k in &self.keys {
            text.push_str(&URL_SAFE_NO_PAD.encode(k.bytes.as_ref()));
            text.push('\n');
        }
        text
    }

    /// Reads `path`.
    ///
    /// # Errors
    /// [`StoreError::Protection`] when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| bad_file(path, e))?);
        Self::parse(&text).map_err(|e| bad_file(path, e))
    }

    /// Reads `path`, or creates it with one new key (owner-readable only)
    /// when it does not exist: the embedded default's first start.
    ///
    /// # Errors
    /// As [`MasterKeys::load`]; when the file cannot be written.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        match std::fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys = Self::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| bad_file(path, e))?;
                }
                write_new(path, &keys.to_text()).map_err(|e| bad_file(path, e))?;
                tracing::info!(path = %path.display(), "generated a data protection master key");
                // A concurrent first start may have won: its key counts.
                Self::load(path)
            }
            Err(e) => Err(bad_file(path, e)),
        }
    }

    /// These keys with a new random current key in front.
    pub fn with_new_current(&self) -> Self {
        let mut keys = vec![MasterKey::new(random_key())];
        keys.extend(
            self.keys
                .iter()
                .map(|k| MasterKey::new(Zeroizing::new(*k.bytes))),
        );
        Self { keys }
    }

    /// Writes these keys to `path`, replacing it atomically (a process
    /// reading it sees the old or the new file, never half of one).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn replace_file(&self, path: &Path) -> Result<(), StoreError> {
        let tmp = PathBuf::from(format!("{}.new", path.display()));
        let _ = std::fs::remove_file(&tmp);
        write_new(&tmp, &self.to_text()).map_err(|e| bad_file(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| bad_file(path, e))
    }

    /// The current key (wraps new data keys).
    pub(crate) fn current(&self) -> &MasterKey {
        &self.keys[0]
    }

    /// The key named `id`.
    pub(crate) fn by_id(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Every key's id, the current first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }
}

/// Creates `path` readable by its owner only, synced to disk; never
/// overwrites (a concurrent first start keeps the first file).
///
/// # Errors
/// When the file cannot be created or written.
pub fn write_new(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_rotation_keeps_the_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let first = MasterKeys::load_or_create(&path).unwrap();
        assert_eq!(
            MasterKeys::load_or_create(&path).unwrap().ids(),
            first.ids()
        );
        let rotated = first.with_new_current();
        rotated.replace_file(&path).unwrap();
        let back = MasterKeys::load(&path).unwrap();
        assert_eq!(back.ids().len(), 2);
        assert_eq!(back.ids()[1], first.ids()[0]);
        assert_eq!(back.current().id, rotated.ids()[0]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn broken_files_are_refused_with_the_line() {
        assert!(MasterKeys::parse("# nothing\n")
            .unwrap_err()
            .contains("no key"));
        assert!(MasterKeys::parse("abc\n").unwrap_err().contains("line 1"));
        assert!(MasterKeys::parse("# c\n!!!\n")
            .unwrap_err()
            .contains("line 2"));
    }
}
