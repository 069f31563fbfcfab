//! The catalog: what was imported, as a JSON file keyed by photo name.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::PhotoError;

/// One imported photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub width: u16,
    pub height: u16,
    pub taken_at: u32,
    pub bytes: u64,
    pub checksum: String,
}

/// Imported photos by file name. Being keyed, adding a photo twice (as a resumed run may, for
/// the few items after its last checkpoint) leaves one entry: the import is idempotent.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    pub photos: BTreeMap<String, Entry>,
}

impl Catalog {
    /// Reads the catalog at `path`; a missing file is an empty catalog.
    pub fn load(path: &Path) -> Result<Catalog, PhotoError> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| PhotoError::Catalog { path: path.to_owned(), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
            Err(source) => Err(PhotoError::Io { path: path.to_owned(), source }),
        }
    }

    /// Writes the catalog to a temporary file and renames it over `path`, so that a crash
    /// leaves the old catalog or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), PhotoError> {
        let mut tmp = PathBuf::from(path);
        tmp.set_extension("json.tmp");
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|source| PhotoError::Catalog { path: path.to_owned(), source })?;
        text.push('\n');
        fs::write(&tmp, text).map_err(PhotoError::io(&tmp))?;
        fs::rename(&tmp, path).map_err(PhotoError::io(path))
    }
}
