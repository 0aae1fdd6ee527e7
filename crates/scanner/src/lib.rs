//! Virus scanning through ClamAV's daemon, clamd, over its socket protocol (`man clamd`).
//!
//! [`Clamd::scan_stream`] sends a file with `zINSTREAM`: the bytes go in chunks, each a
//! 4-byte big-endian length and that many bytes, ended by a zero-length chunk; clamd
//! answers `stream: OK`, `stream: <signature> FOUND`, or an `… ERROR`. One connection per
//! command: connecting to a local socket costs a fraction of a millisecond, far below a
//! scan, so `IDSESSION` and its pipelining rules would buy nothing.
//!
//! Errors tell apart what the caller does next: [`Error::Unreachable`] (clamd is down or
//! not there: keep the file pending and say so in readiness), [`Error::TooLarge`] (the file
//! exceeds clamd's `StreamMaxLength`: retrying cannot help), and protocol or I/O failures.
//!
//! Must never: hold a whole stream in memory (one chunk at a time), wait without a
//! timeout, or log file contents.

mod url;

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::time::timeout;

pub use url::{ClamdUrl, UrlError};

/// Bytes per INSTREAM chunk (clamd reads each chunk whole; 64 KiB keeps memory per scan
/// small and the number of writes low).
const CHUNK_SIZE: usize = 64 * 1024;
/// Longest reply accepted from clamd; a signature name is well below 200 bytes.
const MAX_REPLY: usize = 4096;
/// clamd's whole answer when the stream passed its `StreamMaxLength`.
const SIZE_LIMIT_REPLY: &str = "INSTREAM size limit exceeded.";

/// The result of a completed scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No signature matched.
    Clean,
    /// A signature matched; `signature` is clamd's name for it, e.g.
    /// `Win.Test.EICAR_HDB-1` (signatures from unsigned databases end in `.UNOFFICIAL`).
    Infected { signature: String },
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        matches!(self, Verdict::Clean)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made (socket missing, connection refused, connect timeout).
    #[error("clamd at {url} is unreachable: {source}")]
    Unreachable { url: String, source: io::Error },
    /// Connected, but clamd did not read or answer within the timeout.
    #[error("clamd did not respond in time ({during})")]
    Timeout { during: &'static str },
    /// The connection failed after it was made.
    #[error("connection to clamd failed ({during}): {source}")]
    Io {
        during: &'static str,
        source: io::Error,
    },
    /// The stream is larger than clamd accepts (`StreamMaxLength`), or than the limit set
    /// with [`Clamd::with_max_stream_len`].
    #[error("the file is larger than the virus scanner accepts")]
    TooLarge,
    /// clamd answered with an error of its own (e.g. it could not allocate memory).
    #[error("clamd reported an error: {0}")]
    Scanner(String),
    /// clamd's answer was not what the protocol says.
    #[error("unexpected reply from clamd: {0:?}")]
    Protocol(String),
    /// Reading the caller's stream failed.
    #[error("reading the file to scan failed: {0}")]
    Input(io::Error),
}

impl Error {
    /// Whether the failure lies with clamd's availability rather than with the file, so
    /// that asking again later may succeed: unreachable, timed out, connection broken.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::Io { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long each step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// Each write of a command or chunk, and each answer to PING/VERSION.
    pub io: Duration,
    /// From the end of the stream until the verdict: the scan itself. clamd's own limit
    /// is `MaxScanTime` (default 120 s).
    pub scan: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            io: Duration::from_secs(30),
            scan: Duration::from_secs(150),
        }
    }
}

/// A clamd client. Cheap to clone; every call opens its own connection, so one `Clamd`
/// serves any number of concurrent scans (clamd queues them up to its `MaxQueue`).
#[derive(Debug, Clone)]
pub struct Clamd {
    url: ClamdUrl,
    timeouts: Timeouts,
    max_stream_len: Option<u64>,
}

trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

impl Clamd {
    pub fn new(url: ClamdUrl, timeouts: Timeouts) -> Self {
        Clamd {
            url,
            timeouts,
            max_stream_len: None,
        }
    }

    /// Refuse streams longer than `bytes` with [`Error::TooLarge`] before clamd does. Set it
    /// to clamd's `StreamMaxLength` to stop sending as soon as the limit is passed.
    pub fn with_max_stream_len(mut self, bytes: u64) -> Self {
        self.max_stream_len = Some(bytes);
        self
    }

    pub fn url(&self) -> &ClamdUrl {
        &self.url
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `PING`: succeeds if clamd answers `PONG` (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        let reply = self.simple_command("PING").await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(Error::Protocol(reply))
        }
    }

    /// `VERSION`: e.g. `ClamAV 1.4.6/27500/Tue Dec 10 09:30:00 2024` (engine, database
    /// version and date; only the engine without official databases).
    pub async fn version(&self) -> Result<String> {
        let reply = self.simple_command("VERSION").await?;
        if reply.starts_with("ClamAV ") {
            Ok(reply)
        } else {
            Err(Error::Protocol(reply))
        }
    }

    /// Scan everything `reader` yields, one chunk in memory at a time.
    pub async fn scan_stream<R: AsyncRead + Unpin>(&self, mut reader: R) -> Result<Verdict> {
        let started = Instant::now();
        let mut conn = self.connect().await?;
        let result = self.instream(&mut conn, &mut reader).await;
        match &result {
            Ok((verdict, bytes)) => tracing::debug!(
                url = %self.url,
                bytes,
                elapsed_ms = started.elapsed().as_millis() as u64,
                ?verdict,
                "clamd scan"
            ),
            Err(error) => tracing::debug!(
                url = %self.url,
                elapsed_ms = started.elapsed().as_millis() as u64,
                %error,
                "clamd scan failed"
            ),
        }
        result.map(|(verdict, _)| verdict)
    }

    /// Scan a byte slice.
    pub async fn scan_bytes(&self, data: &[u8]) -> Result<Verdict> {
        self.scan_stream(data).await
    }

    async fn connect(&self) -> Result<Box<dyn Transport>> {
        let unreachable = |source| Error::Unreachable {
            url: self.url.to_string(),
            source,
        };
        let connecting = async {
            match &self.url {
                ClamdUrl::Unix(path) => UnixStream::connect(path)
                    .await
                    .map(|s| Box::new(s) as Box<dyn Transport>),
                ClamdUrl::Tcp { host, port } => {
                    let stream = TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    Ok(Box::new(stream) as Box<dyn Transport>)
                }
            }
        };
        match timeout(self.timeouts.connect, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(unreachable(e)),
            Err(_) => Err(unreachable(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection within {:?}", self.timeouts.connect),
            ))),
        }
    }

    async fn simple_command(&self, command: &str) -> Result<String> {
        let mut conn = self.connect().await?;
        let mut message = Vec::with_capacity(command.len() + 2);
        message.push(b'z');
        message.extend_from_slice(command.as_bytes());
        message.push(0);
        self.write(&mut conn, &message, "sending the command")
            .await?;
        read_reply(&mut conn, self.timeouts.io).await
    }

    async fn write(
        &self,
        conn: &mut Box<dyn Transport>,
        data: &[u8],
        during: &'static str,
    ) -> Result<()> {
        match timeout(self.timeouts.io, conn.write_all(data)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(Error::Io { during, source }),
            Err(_) => Err(Error::Timeout { during }),
        }
    }

    /// The INSTREAM exchange on an open connection; returns the verdict and the byte count.
    async fn instream<R: AsyncRead + Unpin>(
        &self,
        conn: &mut Box<dyn Transport>,
        reader: &mut R,
    ) -> Result<(Verdict, u64)> {
        self.write(conn, b"zINSTREAM\0", "sending the command")
            .await?;
        // One buffer: 4 bytes of length, then the chunk, so each chunk is one write.
        let mut buf = vec![0u8; 4 + CHUNK_SIZE];
        let mut total: u64 = 0;
        loop {
            let len = fill(reader, &mut buf[4..]).await.map_err(Error::Input)?;
            if len == 0 {
                break;
            }
            total += len as u64;
            if self.max_stream_len.is_some_and(|max| total > max) {
                return Err(Error::TooLarge);
            }
            // len <= CHUNK_SIZE, far below u32::MAX.
            buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
            if let Err(error) = self.write(conn, &buf[..4 + len], "sending data").await {
                // clamd closes the connection right after answering a stream that passed
                // its StreamMaxLength; its answer is then waiting to be read.
                if let Error::Io { .. } = error
                    && let Ok(reply) = read_reply(conn, self.timeouts.io).await
                {
                    return parse_scan_reply(&reply).map(|v| (v, total));
                }
                return Err(error);
            }
        }
        self.write(conn, &[0, 0, 0, 0], "ending the stream").await?;
        let reply = read_reply(conn, self.timeouts.scan).await?;
        parse_scan_reply(&reply).map(|v| (v, total))
    }
}

/// Read until `buf` is full or the reader is at its end; 0 only at the end.
async fn fill<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Read one NUL-terminated reply (z-commands get z-replies), at most [`MAX_REPLY`] bytes,
/// within `limit`. A reply cut short by the connection closing is taken as it is.
async fn read_reply<S: AsyncRead + Unpin + ?Sized>(
    conn: &mut S,
    limit: Duration,
) -> Result<String> {
    let reading = async {
        let mut reply = Vec::with_capacity(64);
        let mut buf = [0u8; 512];
        loop {
            let n = conn.read(&mut buf).await.map_err(|source| Error::Io {
                during: "reading the reply",
                source,
            })?;
            if n == 0 {
                if reply.is_empty() {
                    return Err(Error::Io {
                        during: "reading the reply",
                        source: io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "clamd closed the connection without a reply",
                        ),
                    });
                }
                return Ok(reply);
            }
            if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
                reply.extend_from_slice(&buf[..end]);
                if reply.len() > MAX_REPLY {
                    break;
                }
                return Ok(reply);
            }
            reply.extend_from_slice(&buf[..n]);
            if reply.len() > MAX_REPLY {
                break;
            }
        }
        reply.truncate(MAX_REPLY);
        Err(Error::Protocol(format!(
            "reply longer than {MAX_REPLY} bytes: {}…",
            String::from_utf8_lossy(&reply[..200.min(reply.len())])
        )))
    };
    let reply = match timeout(limit, reading).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Error::Timeout {
                during: "waiting for the reply",
            });
        }
    };
    Ok(String::from_utf8_lossy(&reply)
        .trim_end_matches(['\n', '\r'])
        .to_owned())
}

/// Interpret clamd's answer to INSTREAM.
fn parse_scan_reply(reply: &str) -> Result<Verdict> {
    if reply.starts_with(SIZE_LIMIT_REPLY) {
        return Err(Error::TooLarge);
    }
    if let Some(message) = reply.strip_suffix(" ERROR") {
        let message = message.strip_prefix("stream: ").unwrap_or(message);
        return Err(Error::Scanner(message.to_owned()));
    }
    let Some(body) = reply.strip_prefix("stream: ") else {
        return Err(Error::Protocol(reply.to_owned()));
    };
    if body == "OK" {
        return Ok(Verdict::Clean);
    }
    match body.strip_suffix(" FOUND") {
        Some(signature) if !signature.trim().is_empty() => Ok(Verdict::Infected {
            signature: signature.to_owned(),
        }),
        _ => Err(Error::Protocol(reply.to_owned())),
    }
}

#[cfg(test)]
mod tests;
