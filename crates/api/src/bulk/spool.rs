//! Uploads stream to a file in the spool folder, hashed on the way for their idempotency
//! fingerprint and cut at the size limit: a body is never held whole in memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::problem::{french_seconds, ApiError};

/// An uploaded file on disk; removed when dropped unless kept for its job.
pub struct Spooled {
    path: PathBuf,
    pub bytes: u64,
    /// SHA-256 of the fingerprint prefix and the body, in hex.
    pub digest: String,
    kept: bool,
}

impl Spooled {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands the file over to its job: it is no longer removed on drop.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The bytes the uploads being received on this replica may still write: each its declared
/// length, or the largest upload when it declares none.
#[derive(Default)]
pub struct Reservations(AtomicU64);

/// One upload's share of [`Reservations`], given back when it is dropped (the upload written and
/// on disk, or refused).
pub struct Reserved<'a> {
    of: &'a Reservations,
    bytes: u64,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        self.of.0.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Room for an upload of up to `bytes` in `dir`: what the folder holds (the uploads waiting for
/// their jobs, and those being written, again) plus what the uploads being received may still
/// write stays within `budget`, else 503 `SpoolFull`. Counting an upload being written twice
/// errs on the side of the disk: a full folder evicts a pod, or fails every upload at once.
pub async fn reserve<'a>(
    reservations: &'a Reservations,
    dir: &Path,
    bytes: u64,
    budget: u64,
) -> Result<Reserved<'a>, ApiError> {
    let held = folder_bytes(dir).await.map_err(io_failure)?;
    let receiving = reservations.0.fetch_add(bytes, Ordering::AcqRel);
    let reserved = Reserved {
        of: reservations,
        bytes,
    };
    if held.saturating_add(receiving).saturating_add(bytes) > budget {
        tracing::warn!(
            held,
            receiving,
            bytes,
            budget,
            "a bulk upload was refused: the spool folder is full"
        );
        return Err(ApiError::SpoolFull);
    }
    Ok(reserved)
}

/// The bytes of the files in `dir` (none when it does not exist yet).
async fn folder_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0u64;
    while let Some(entry) = entries.next_entry().await? {
        // A file removed meanwhile (a job ended) holds nothing.
        if let Ok(meta) = entry.metadata().await {
            total = total.saturating_add(meta.len());
        }
    }
    Ok(total)
}

/// Writes `body` to a new file of `dir`, hashing `prefix` then the body. More than `max_bytes`
/// is 413 and leaves nothing behind; so does a body cut short (400).
/// An upload that sends nothing for `idle` is cut (`Config::batch_upload_idle`): a slow link still
/// sends something every few seconds, and eight uploads that sent their header line and then
/// nothing held the whole spool, every mutuelle's uploads refused, for the 30 minutes an upload
/// may take.
pub async fn spool(dir: &Path, body: Body, max_bytes: u64, prefix: &[u8], idle: Duration) -> Result<Spooled, ApiError> {
    create_private_dir(dir).await.map_err(io_failure)?;
    let mut spooled = Spooled {
        path: dir.join(format!("{}.upload", uuid::Uuid::now_v7())),
        bytes: 0,
        digest: String::new(),
        kept: false,
    };
    // Uploads hold households' personal data: readable by the service's user alone.
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let file = options.open(&spooled.path).await.map_err(io_failure)?;
    let mut file = tokio::io::BufWriter::with_capacity(256 * 1024, file);
    let mut hasher = Sha256::new();
    hasher.update(prefix);
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(chunk)) => chunk.map_err(|_| cut_short())?,
            Ok(None) => break,
            Err(_) => return Err(went_silent(idle)),
        };
        spooled.bytes += chunk.len() as u64;
        if spooled.bytes > max_bytes {
            return Err(ApiError::PayloadTooLarge);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io_failure)?;
    }
    file.flush().await.map_err(io_failure)?;
    file.into_inner().sync_all().await.map_err(io_failure)?;
    spooled.digest = hex::encode(hasher.finalize());
    Ok(spooled)
}

/// The spool folder, created for the service's user alone (`0700`) when missing. A folder that
/// exists is left as its operator made it (a shared volume's own permissions).
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = tokio::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir).await
}

/// A full disk or an unwritable folder: the service cannot take uploads now.
fn io_failure(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "cannot write to the bulk upload spool folder");
    ApiError::SpoolUnavailable
}

/// Removes a job's file once the job has ended; only ever inside the spool folder, so that a
/// file given to `passerelle import` is never touched.
pub fn discard(dir: &Path, path: &str) {
    let path = Path::new(path);
    if path.parent() == Some(dir) {
        let _ = std::fs::remove_file(path);
    }
}

/// Checks at start that uploads can be spooled: the folder is created if missing, and a file is
/// written and removed in it. A folder that cannot be written would pass the readiness probe and
/// then refuse every upload.
pub async fn check_writable(dir: &Path) -> Result<(), String> {
    let probe = dir.join(format!(".write-check-{}", uuid::Uuid::now_v7()));
    let result = async {
        create_private_dir(dir).await?;
        tokio::fs::write(&probe, b"").await?;
        tokio::fs::remove_file(&probe).await
    }
    .await;
    result.map_err(|e| {
        format!(
            "configuration error: PASSERELLE_BATCH_SPOOL_DIR: cannot write to {}: {e}",
            dir.display()
        )
    })
}

/// An upload that sent nothing for `idle`: cut, nothing kept.
pub fn went_silent(idle: Duration) -> ApiError {
    let seconds = idle.as_secs_f64();
    // French writes a decimal comma, and the singular below two (1,5 seconde).
    let secondes = french_seconds(seconds);
    ApiError::RequestTimeout {
        en: format!("The upload sent nothing for {seconds} seconds and was stopped; nothing was kept: send the file again."),
        fr: format!("L'envoi n'a rien transmis pendant {secondes} et a été arrêté ; rien n'a été conservé : renvoyez le fichier."),
    }
}

/// An upload whose body ended before its declared length (the client's connection dropped).
pub fn cut_short() -> ApiError {
    ApiError::malformed(
        "The upload stopped before its end; send the file again.",
        "L'envoi s'est arrêté avant la fin ; renvoyez le fichier.",
    )
}
