//! Where uploaded content lives on disk and the limits it is held to.
//!
//! ```text
//! DATA_DIR/uploads/tmp/<random>.part      an upload still arriving (deleted if it fails)
//! DATA_DIR/uploads/<attachment id>/original
//! DATA_DIR/uploads/<attachment id>/thumbnail   pictures only
//! ```
//!
//! Attachment ids are random hex and validated as such before any path is built from one, so
//! no request can name a file outside its own attachment's folder.

use std::io;
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::ApiConfig;

/// Random bytes in an attachment id: 128 bits, so ids cannot be guessed.
const ID_BYTES: usize = 16;

/// The length of an attachment id in hex.
pub const ID_LEN: usize = ID_BYTES * 2;

/// The upload folders and limits of one server.
#[derive(Clone, Debug)]
pub struct Files {
    root: PathBuf,
    pub max_upload_bytes: u64,
    pub max_image_bytes: u64,
    pub max_image_pixels: u64,
}

impl Files {
    pub fn new(config: &ApiConfig) -> Files {
        Files {
            root: config.data_dir.join("uploads"),
            max_upload_bytes: config.max_upload_bytes,
            max_image_bytes: config.max_image_bytes,
            max_image_pixels: config.max_image_pixels,
        }
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The folder of an attachment; `None` unless `id` is a well-formed id.
    pub fn dir_of(&self, id: &str) -> Option<PathBuf> {
        is_valid_id(id).then(|| self.root.join(id))
    }

    pub fn original(&self, id: &str) -> Option<PathBuf> {
        self.dir_of(id).map(|d| d.join("original"))
    }

    pub fn thumbnail(&self, id: &str) -> Option<PathBuf> {
        self.dir_of(id).map(|d| d.join("thumbnail"))
    }

    /// A fresh temporary path for an arriving upload.
    pub fn temp_path(&self) -> PathBuf {
        self.tmp_dir().join(format!("{}.part", new_id()))
    }

    /// Creates the folders and removes uploads a previous run left half-received.
    pub fn prepare(&self) -> io::Result<()> {
        let tmp = self.tmp_dir();
        std::fs::create_dir_all(&tmp)?;
        let mut removed = 0usize;
        for entry in std::fs::read_dir(&tmp)? {
            let path = entry?.path();
            if path.is_file() && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed unfinished uploads from a previous run");
        }
        Ok(())
    }

    /// Removes an attachment's folder and everything in it.
    pub async fn remove(&self, id: &str) {
        let Some(dir) = self.dir_of(id) else { return };
        match tokio::fs::remove_dir_all(&dir).await {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(error = %err, attachment.id = id, "could not remove an attachment's files");
            }
            _ => {}
        }
    }
}

/// A new random attachment id.
pub fn new_id() -> String {
    hex::encode(rand::rng().random::<[u8; ID_BYTES]>())
}

/// Whether `id` looks like an id this server made: exactly [`ID_LEN`] lower-case hex digits.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A file that is deleted when dropped unless [`TempFile::keep`] was called: an upload that
/// fails, is refused or is abandoned by its client leaves nothing behind.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub fn new(path: PathBuf) -> TempFile {
        TempFile { path, armed: true }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file was moved elsewhere or must stay; do not delete it.
    pub fn keep(mut self) -> PathBuf {
        self.armed = false;
        std::mem::take(&mut self.path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(error = %err, path = %self.path.display(), "could not remove a temporary upload");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_ids_name_a_folder() {
        let files = Files::new(&ApiConfig {
            data_dir: PathBuf::from("/data"),
            max_upload_bytes: 1,
            max_image_bytes: 1,
            max_image_pixels: 1,
        });
        let id = new_id();
        assert!(is_valid_id(&id));
        assert_eq!(
            files.original(&id),
            Some(PathBuf::from(format!("/data/uploads/{id}/original")))
        );
        for bad in [
            "",
            "..",
            "../../etc/passwd",
            "tmp",
            &id.to_uppercase(),
            &format!("{id}0"),
            &id[1..],
        ] {
            assert_eq!(files.dir_of(bad), None, "{bad:?}");
        }
    }
}
