//! The pipeline's error type, classified for the retry layer and the error handler.

use std::path::PathBuf;

use resilience::Classify;

/// Everything that can go wrong while importing one photo, or the whole import.
///
/// `#[derive(Classify)]` tells the other layers what to do with each variant:
/// - `retry`: `#[retry]` runs the upload again after a backoff delay;
/// - `skip`: the import loop records the error and goes on with the next photo;
/// - `abort`: the import stops; its checkpoint says where, and the next run resumes there.
#[derive(Debug, thiserror::Error, Classify)]
pub enum PhotoError {
    /// The storage service did not answer in time. Transient: worth another attempt.
    #[error("upload of `{photo}` timed out (attempt {attempt})")]
    #[classify(retry, code = "E_UPLOAD_TIMEOUT", category = "network", severity = "warning")]
    UploadTimeout { photo: String, attempt: u32 },

    /// The file does not start with a photo header. Trying again cannot help: skip it.
    #[error("`{photo}` has a corrupt header")]
    #[classify(skip, code = "E_CORRUPT_HEADER", category = "input", severity = "warning")]
    CorruptHeader { photo: String },

    /// The file is shorter than its header says. Skip it too.
    #[error("`{photo}` is truncated: {actual} of {expected} pixel bytes")]
    #[classify(skip, code = "E_TRUNCATED", category = "input", severity = "warning")]
    Truncated { photo: String, expected: u64, actual: u64 },

    /// A local file could not be read or written.
    #[error("I/O error on `{}`", path.display())]
    #[classify(abort, code = "E_IO", category = "storage", severity = "critical")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The catalog file is not valid JSON.
    #[error("the catalog `{}` is damaged", path.display())]
    #[classify(abort, code = "E_CATALOG", category = "storage", severity = "critical")]
    Catalog {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// `--restore-catalog` found no backup to restore.
    #[error("the catalog `{}` has no backup to restore", path.display())]
    #[classify(abort, code = "E_NO_BACKUP", category = "storage", severity = "error")]
    NoBackup { path: PathBuf },

    /// The checkpoint store failed (or another run holds the operation's lock).
    /// `#[checkpointed]` and `#[protected]` need this `From<resilience::Error>` conversion.
    #[error(transparent)]
    #[classify(transparent)]
    Resilience(#[from] resilience::Error),
}

impl PhotoError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> PhotoError {
        let path = path.into();
        move |source| PhotoError::Io { path, source }
    }
}
