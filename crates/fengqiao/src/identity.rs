//! The node's Ed25519 identity key (`node.key`), and the node ID and automerge actor derived from it.
//!
//! The node ID is derived from the public key (as Syncthing derives device IDs), so a node cannot
//! claim another node's ID without its key, and every automerge change it writes carries the same
//! 16 bytes as its actor id.
//!
//! `node.key` is a small text file, readable by the node's user only (mode 0600):
//!
//! ```text
//! fengqiao-node-key 1
//! ed25519 <64 hex digits: the 32-byte secret seed>
//! ```

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use fengqiao_case::NodeId;

/// First word of a key file: says what the file is to anyone who opens it.
const KEY_FILE_MAGIC: &str = "fengqiao-node-key";

/// Version of the key file format this build writes and reads.
pub const KEY_FILE_VERSION: u32 = 1;

/// Bytes of SHA-256(public key) that make the node ID and the automerge actor id.
pub const ACTOR_LENGTH: usize = fengqiao_sync::roster::NODE_ID_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "node key {} not found: is this a node directory? create one with `fengqiao init`",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("cannot read node key {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("node key {} is corrupt: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "node key {} has format version {found}; this build reads version {KEY_FILE_VERSION}",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: String },
    #[error(
        "node key {} already exists: refusing to overwrite a node's identity",
        path.display()
    )]
    AlreadyExists { path: PathBuf },
    #[error("cannot write node key {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// A node's signing key and the identifiers derived from it.
pub struct NodeIdentity {
    signing_key: SigningKey,
    node_id: NodeId,
    actor: [u8; ACTOR_LENGTH],
}

// Hand-written so that the secret key can never end up in a log line or a panic message.
impl fmt::Debug for NodeIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("NodeIdentity")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The node ID and actor id of a public key: the first 16 bytes of SHA-256(public key).
pub fn derive_node_id(public_key: &VerifyingKey) -> (NodeId, [u8; ACTOR_LENGTH]) {
    let actor = fengqiao_sync::node_actor_for_public_key(public_key.as_bytes());
    (hex::encode(actor), actor)
}

impl NodeIdentity {
    /// A fresh identity from 32 bytes of the operating system's randomness.
    pub fn generate() -> Result<NodeIdentity, IdentityError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(IdentityError::Random)?;
        Ok(NodeIdentity::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> NodeIdentity {
        let signing_key = SigningKey::from_bytes(&seed);
        let (node_id, actor) = derive_node_id(&signing_key.verifying_key());
        NodeIdentity {
            signing_key,
            node_id,
            actor,
        }
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The automerge actor id this node writes case documents with.
    pub fn actor(&self) -> &[u8; ACTOR_LENGTH] {
        &self.actor
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing_key.verifying_key()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.signing_key.sign(message)
    }

    /// The QUIC/TLS credentials of the same key, so the node the transport proves is this one.
    pub fn transport_credentials(
        &self,
    ) -> Result<fengqiao_transport::NodeCredentials, fengqiao_transport::TransportError> {
        fengqiao_transport::NodeCredentials::from_seed(&self.signing_key.to_bytes())
    }

    /// The key file's text.
    fn encode(&self) -> String {
        format!(
            "{KEY_FILE_MAGIC} {KEY_FILE_VERSION}\ned25519 {}\n",
            hex::encode(self.signing_key.to_bytes())
        )
    }

    /// Parse a key file's text; `path` only names the file in errors.
    fn decode(text: &str, path: &Path) -> Result<NodeIdentity, IdentityError> {
        let corrupt = |why: &str| IdentityError::Corrupt {
            path: path.to_path_buf(),
            why: why.to_owned(),
        };
        let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
        let header = lines.next().ok_or_else(|| corrupt("the file is empty"))?;
        let mut header_words = header.split_whitespace();
        if header_words.next() != Some(KEY_FILE_MAGIC) {
            return Err(corrupt("it does not start with `fengqiao-node-key`"));
        }
        let version = header_words
            .next()
            .ok_or_else(|| corrupt("the format version is missing"))?;
        if version != KEY_FILE_VERSION.to_string() {
            return Err(IdentityError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version.to_owned(),
            });
        }
        let key_line = lines
            .next()
            .ok_or_else(|| corrupt("the key line is missing"))?;
        let hex_seed = key_line
            .strip_prefix("ed25519 ")
            .ok_or_else(|| corrupt("the key line does not start with `ed25519`"))?
            .trim();
        let bytes = hex::decode(hex_seed).map_err(|_| corrupt("the key is not hexadecimal"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| corrupt("the key is not 32 bytes long"))?;
        if lines.next().is_some() {
            return Err(corrupt("unexpected text after the key"));
        }
        Ok(NodeIdentity::from_seed(seed))
    }

    /// Load the key file at `path`.
    pub fn load(path: &Path) -> Result<NodeIdentity, IdentityError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing {
                    path: path.to_path_buf(),
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::InvalidData => {
                return Err(IdentityError::Corrupt {
                    path: path.to_path_buf(),
                    why: "it is not text".to_owned(),
                });
            }
            Err(source) => {
                return Err(IdentityError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        warn_if_readable_by_others(path);
        NodeIdentity::decode(&text, path)
    }

    /// Write a new key file at `path` (mode 0600). Never overwrites: a node's identity is for life.
    ///
    /// Written to a temporary file and renamed, so a crash leaves either no key or a whole one.
    pub fn save_new(&self, path: &Path) -> Result<(), IdentityError> {
        if path.exists() {
            return Err(IdentityError::AlreadyExists {
                path: path.to_path_buf(),
            });
        }
        let write_error = |source| IdentityError::Write {
            path: path.to_path_buf(),
            source,
        };
        let temporary = path.with_extension("key.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(write_error)?;
        file.write_all(self.encode().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_error)?;
        drop(file);
        std::fs::rename(&temporary, path).map_err(write_error)?;
        if let Some(parent) = path.parent() {
            sync_directory(parent).map_err(write_error)?;
        }
        Ok(())
    }
}

/// Make a rename durable: on Linux the directory entry is only on disk once the directory is synced.
pub(crate) fn sync_directory(directory: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let directory = if directory.as_os_str().is_empty() {
            Path::new(".")
        } else {
            directory
        };
        std::fs::File::open(directory)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = directory;
        Ok(())
    }
}

/// A key others can read is still usable, but the operator should know.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "node key is readable by other users: run `chmod 600` on it"
            );
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
    }
}

/// The node signs its roster entries (its own as a root, its children's) with its node key.
impl fengqiao_sync::RosterSigner for NodeIdentity {
    fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        Signer::sign(&self.signing_key, message).to_bytes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use ed25519_dalek::Verifier;
    use sha2::Digest;

    use super::*;

    #[test]
    fn saved_key_loads_back_with_the_same_identity() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("node.key");
        let identity = NodeIdentity::generate().unwrap();
        identity.save_new(&path).unwrap();
        let loaded = NodeIdentity::load(&path).unwrap();
        assert_eq!(loaded.node_id(), identity.node_id());
        assert_eq!(loaded.actor(), identity.actor());
        let signature = loaded.sign(b"petition");
        identity
            .verifying_key()
            .verify(b"petition", &signature)
            .unwrap();
        assert!(!temp.path().join("node.key.tmp").exists());
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("node.key");
        NodeIdentity::generate().unwrap().save_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn node_id_is_hex_of_the_actor_and_derived_from_the_public_key() {
        let identity = NodeIdentity::from_seed([7; 32]);
        assert_eq!(identity.node_id().len(), 32);
        assert_eq!(identity.node_id(), hex::encode(identity.actor()));
        let digest = sha2::Sha256::digest(identity.verifying_key().as_bytes());
        assert_eq!(&digest[..16], identity.actor());
        // The transport derives the same ID from the certificate key.
        assert_eq!(
            fengqiao_transport::NodeId::from_verifying_key(&identity.verifying_key()).to_string(),
            identity.node_id()
        );
        assert_ne!(
            NodeIdentity::from_seed([8; 32]).node_id(),
            identity.node_id()
        );
    }

    #[test]
    fn never_overwrites_an_existing_key() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("node.key");
        let first = NodeIdentity::generate().unwrap();
        first.save_new(&path).unwrap();
        let error = NodeIdentity::generate()
            .unwrap()
            .save_new(&path)
            .unwrap_err();
        assert!(matches!(error, IdentityError::AlreadyExists { .. }));
        assert_eq!(
            NodeIdentity::load(&path).unwrap().node_id(),
            first.node_id()
        );
    }

    #[test]
    fn missing_and_corrupt_files_say_what_is_wrong() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("node.key");
        let missing = NodeIdentity::load(&path).unwrap_err();
        assert!(matches!(missing, IdentityError::Missing { .. }));
        assert!(missing.to_string().contains("fengqiao init"));

        let cases: [(&[u8], &str); 7] = [
            (b"", "empty"),
            (b"hello\n", "does not start"),
            (b"fengqiao-node-key\n", "version is missing"),
            (b"fengqiao-node-key 1\n", "key line is missing"),
            (b"fengqiao-node-key 1\ned25519 zz\n", "not hexadecimal"),
            (b"fengqiao-node-key 1\ned25519 abcd\n", "not 32 bytes"),
            (&[0xff, 0xfe, 0x00], "not text"),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, content).unwrap();
            let error = NodeIdentity::load(&path).unwrap_err().to_string();
            assert!(error.contains("corrupt"), "{error}");
            assert!(
                error.contains(expected),
                "{error} should mention {expected}"
            );
        }

        std::fs::write(&path, "fengqiao-node-key 9\ned25519 00\n").unwrap();
        let error = NodeIdentity::load(&path).unwrap_err();
        assert!(matches!(error, IdentityError::UnsupportedVersion { .. }));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let identity = NodeIdentity::from_seed([0xab; 32]);
        let shown = format!("{identity:?}");
        assert!(!shown.contains(&hex::encode([0xab; 32])));
        assert!(shown.contains(identity.node_id()));
    }
}
