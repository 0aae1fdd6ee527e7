//! Receiving multipart uploads: text parts into memory (small, limited), file parts streamed
//! into blob storage chunk by chunk, hashed on the way. Nothing of a failed upload stays.

use axum::extract::Multipart;

use app::{App, StoredAttachment};

#[derive(Debug)]
pub(crate) enum UploadError {
    TooManyFiles { max: usize },
    FileTooLarge { filename: String, max: u64 },
    TextTooLarge { name: String, max: usize },
    UnknownPart(String),
    Malformed(String),
    Storage(String),
}

impl UploadError {
    pub(crate) fn message(&self) -> String {
        match self {
            UploadError::TooManyFiles { max } => format!("at most {max} files per message"),
            UploadError::FileTooLarge { filename, max } => {
                format!("{filename} is larger than {} MB", max / (1024 * 1024))
            }
            UploadError::TextTooLarge { name, max } => {
                format!("part {name} is larger than {max} bytes")
            }
            UploadError::UnknownPart(n) => format!("unknown part {n:?}"),
            UploadError::Malformed(m) => format!("malformed multipart body: {m}"),
            UploadError::Storage(m) => format!("storage: {m}"),
        }
    }
}

pub(crate) struct Received {
    pub texts: Vec<(String, String)>,
    pub files: Vec<StoredAttachment>,
}

impl Received {
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Removes the stored files (when the request fails after the upload).
    pub(crate) async fn discard(self, app: &App) {
        for f in self.files {
            let _ = app.blobs().delete(&f.blob_key).await;
        }
    }
}

/// Reads the whole multipart body. `file_parts` names the parts that carry files; every
/// other part must be in `text_parts` and is kept as text of at most `max_text` bytes.
pub(crate) async fn receive(
    app: &App,
    mut multipart: Multipart,
    file_parts: &[&str],
    text_parts: &[&str],
    max_text: usize,
) -> Result<Received, UploadError> {
    let mut received = Received {
        texts: Vec::new(),
        files: Vec::new(),
    };
    let result = receive_into(
        app,
        &mut multipart,
        file_parts,
        text_parts,
        max_text,
        &mut received,
    )
    .await;
    match result {
        Ok(()) => Ok(received),
        Err(e) => {
            received.discard(app).await;
            Err(e)
        }
    }
}

async fn receive_into(
    app: &App,
    multipart: &mut Multipart,
    file_parts: &[&str],
    text_parts: &[&str],
    max_text: usize,
    received: &mut Received,
) -> Result<(), UploadError> {
    let limits = app.postfach_settings().clone();
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| UploadError::Malformed(e.body_text()))?;
        let Some(mut field) = field else {
            return Ok(());
        };
        let name = field.name().unwrap_or("").to_owned();
        if file_parts.contains(&name.as_str()) {
            let raw_name = field.file_name().unwrap_or("").to_owned();
            let media_type = app::clean_media_type(field.content_type().unwrap_or(""));
            let first = field
                .chunk()
                .await
                .map_err(|e| UploadError::Malformed(e.body_text()))?;
            // Browsers send an empty part for a file input left empty.
            let Some(first) = first.filter(|c| !c.is_empty()) else {
                continue;
            };
            if received.files.len() >= limits.max_files {
                return Err(UploadError::TooManyFiles {
                    max: limits.max_files,
                });
            }
            let filename = app::clean_filename(&raw_name);
            let (id, key) = app.new_attachment_key();
            let mut writer = app
                .blobs()
                .writer(&key, limits.max_file_bytes)
                .await
                .map_err(|e| UploadError::Storage(e.to_string()))?;
            let mut chunk = Some(first);
            while let Some(c) = chunk {
                if let Err(e) = writer.write(&c).await {
                    writer.abort().await;
                    return Err(match e {
                        blobs::BlobError::TooLarge { max } => {
                            UploadError::FileTooLarge { filename, max }
                        }
                        other => UploadError::Storage(other.to_string()),
                    });
                }
                chunk = match field.chunk().await {
                    Ok(c) => c,
                    Err(e) => {
                        writer.abort().await;
                        return Err(UploadError::Malformed(e.body_text()));
                    }
                };
            }
            let info = writer
                .finish()
                .await
                .map_err(|e| UploadError::Storage(e.to_string()))?;
            received.files.push(StoredAttachment {
                id,
                filename,
                media_type,
                size: info.size,
                sha256: info.sha256,
                blob_key: key,
            });
        } else if text_parts.contains(&name.as_str()) {
            let mut text = Vec::new();
            while let Some(c) = field
                .chunk()
                .await
                .map_err(|e| UploadError::Malformed(e.body_text()))?
            {
                if text.len() + c.len() > max_text {
                    return Err(UploadError::TextTooLarge {
                        name,
                        max: max_text,
                    });
                }
                text.extend_from_slice(&c);
            }
            let text = String::from_utf8(text)
                .map_err(|_| UploadError::Malformed(format!("part {name} is not UTF-8")))?;
            received.texts.push((name, text));
        } else {
            return Err(UploadError::UnknownPart(name));
        }
    }
}
