//! Blob storage for files (Postfach attachments, later submissions and receipts), behind
//! `object_store`: local disk by default.
//!
//! Files are written as a stream, hashed on the way (SHA-256), and refused as soon as they
//! exceed their limit, so a large upload never sits in memory. On local disk a finished
//! blob is fsynced with its directory before `finish` returns: a caller may acknowledge it.
//!
//! Must never: hold a whole file in memory on the write path, or report a blob written
//! before it is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("invalid blob key {0:?}")]
    InvalidKey(String),
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob storage: {0}")]
    Storage(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
            other => BlobError::Storage(other.to_string()),
        }
    }
}

pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// What a finished write produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Set for local disk: where to fsync.
    root: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("root", &self.root).finish()
    }
}

fn key_path(key: &str) -> Result<ObjectPath> {
    // Keys are made by the application (ids), never by users; still, refuse anything that
    // could leave the store's root.
    if key.is_empty()
        || key.contains("..")
        || key.starts_with('/')
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.'))
    {
        return Err(BlobError::InvalidKey(key.into()));
    }
    ObjectPath::parse(key).map_err(|_| BlobError::InvalidKey(key.into()))
}

impl Blobs {
    /// Blobs in a directory on local disk (created if missing).
    pub fn local(dir: &Path) -> Result<Blobs> {
        std::fs::create_dir_all(dir).map_err(|e| BlobError::Storage(e.to_string()))?;
        let root = dir
            .canonicalize()
            .map_err(|e| BlobError::Storage(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Blobs {
            store: Arc::new(store),
            root: Some(root),
        })
    }

    /// Starts writing `key`; at most `max_size` bytes are accepted.
    pub async fn writer(&self, key: &str, max_size: u64) -> Result<BlobWriter> {
        let path = key_path(key)?;
        let upload = self.store.put_multipart(&path).await?;
        Ok(BlobWriter {
            blobs: self.clone(),
            key: key.to_owned(),
            upload: Some(WriteMultipart::new(upload)),
            hasher: crypto::Sha256::new(),
            size: 0,
            max_size,
        })
    }

    /// Writes a small blob in one go.
    pub async fn put(&self, key: &str, data: &[u8]) -> Result<BlobInfo> {
        let mut w = self.writer(key, data.len() as u64).await?;
        w.write(data).await?;
        w.finish().await
    }

    /// The whole blob.
    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let path = key_path(key)?;
        Ok(self.store.get(&path).await?.bytes().await?)
    }

    /// The blob as a stream of chunks, for downloads.
    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<impl futures_util::Stream<Item = Result<Bytes>> + Send + 'static> {
        let path = key_path(key)?;
        let result = self.store.get(&path).await?;
        Ok(result.into_stream().map(|r| r.map_err(BlobError::from)))
    }

    /// Keys under `prefix` last written before `before_unix` (seconds), at most `limit`:
    /// the candidates of a sweep for files whose database row never committed.
    pub async fn list_older(
        &self,
        prefix: &str,
        before_unix: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let prefix = key_path(prefix)?;
        let mut listing = self.store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp() < before_unix {
                out.push(meta.location.to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = key_path(key)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn make_durable(&self, key: &str) -> Result<()> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let root = root.clone();
        let file = root.join(key);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&file)?.sync_all()?;
            // Every directory from the file up to the root: the key's directories may have
            // been created for this blob, and a new entry is durable only once the directory
            // holding it is synced.
            let mut dir = file.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Storage(e.to_string()))?
        .map_err(|e| BlobError::Storage(format!("fsync: {e}")))
    }
}

/// A blob being written. Dropping it without [`BlobWriter::finish`] leaves nothing behind
/// that counts: call [`BlobWriter::abort`] to clean up at once.
pub struct BlobWriter {
    blobs: Blobs,
    key: String,
    upload: Option<WriteMultipart>,
    hasher: crypto::Sha256,
    size: u64,
    max_size: u64,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.max_size {
            return Err(BlobError::TooLarge { max: self.max_size });
        }
        self.hasher.update(chunk);
        let upload = self
            .upload
            .as_mut()
            .ok_or_else(|| BlobError::Storage("write after finish".into()))?;
        // Backpressure: at most a few parts in flight.
        upload.wait_for_capacity(4).await?;
        upload.write(chunk);
        Ok(())
    }

    pub async fn finish(mut self) -> Result<BlobInfo> {
        let upload = self
            .upload
            .take()
            .ok_or_else(|| BlobError::Storage("finished twice".into()))?;
        upload.finish().await?;
        self.blobs.make_durable(&self.key).await?;
        Ok(BlobInfo {
            size: self.size,
            sha256: std::mem::take(&mut self.hasher).finish_hex(),
        })
    }

    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            let _ = upload.abort().await;
        }
        let _ = self.blobs.delete(&self.key).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn write_read_limit_delete() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path()).unwrap();
        let mut w = blobs.writer("a/b.bin", 10).await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"you").await.unwrap();
        let info = w.finish().await.unwrap();
        assert_eq!(info.size, 9);
        assert_eq!(info.sha256, crypto::sha256_hex(b"hello you"));
        assert_eq!(&blobs.get("a/b.bin").await.unwrap()[..], b"hello you");

        let mut w = blobs.writer("a/c.bin", 4).await.unwrap();
        assert!(matches!(
            w.write(b"too long").await,
            Err(BlobError::TooLarge { max: 4 })
        ));
        w.abort().await;
        assert!(matches!(
            blobs.get("a/c.bin").await,
            Err(BlobError::NotFound(_))
        ));

        blobs.delete("a/b.bin").await.unwrap();
        assert!(blobs.get("a/b.bin").await.is_err());
        assert!(matches!(
            blobs.writer("../x", 1).await,
            Err(BlobError::InvalidKey(_))
        ));
    }
}
