//! The tokio side: the accept loop with its limits and shutdown, and the per-connection
//! loop that reads lines, feeds the [`Session`] and writes its replies.
//!
//! PIPELINING (RFC 2920): replies are collected and written only when the read buffer is
//! empty (a batch of commands gets one batch of replies), and always before waiting for
//! DATA content, before a delivery and before the TLS handshake.

use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

use crate::limits::{Connections, MessageRate, Refused};
use crate::session::{AfterData, MAX_COMMAND_LINE, Reply, Session, Step};
use crate::{Config, Delivery, DeliveryOutcome};

/// After shutdown, how long a delivery that started within `data_timeout` may still take.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);
/// Longest wait for the client to take our last reply and the close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections until `shutdown` resolves; then stops accepting, lets sessions in
/// DATA finish (bounded by `data_timeout`, plus a short grace for the delivery) and
/// answers the others `421 4.3.2`. Returns when every session has ended; accept errors
/// (e.g. out of file descriptors) are logged and retried, not returned.
pub async fn serve<D: Delivery>(
    listener: TcpListener,
    config: Arc<Config>,
    delivery: Arc<D>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        connections: Mutex::new(Connections::new(
            config.max_connections,
            config.max_connections_per_ip,
        )),
        rate: Mutex::new(MessageRate::new(config.max_messages_per_ip_per_minute)),
        ids: Ids::new(),
        config,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sessions = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(joined) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(error) = joined
                    && error.is_panic()
                {
                    tracing::error!("smtp: a session panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admit(&shared, peer) {
                    Ok(guard) => {
                        let ip = guard.ip;
                        let span = tracing::info_span!("smtp", client = %ip);
                        let connection = Connection {
                            session: Session::new(&shared.config, ip),
                            out: Vec::new(),
                            shared: Arc::clone(&shared),
                            delivery: Arc::clone(&delivery),
                            stop: stop_rx.clone(),
                            ip,
                        };
                        sessions.spawn(connection.run(stream, guard).instrument(span));
                    }
                    // Refusals are short-lived tasks too: the reply is tiny, the wait for
                    // the client bounded.
                    Err(reply) => {
                        sessions.spawn(refuse(stream, reply));
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "smtp: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let wait = shared.config.data_timeout.saturating_add(DELIVERY_GRACE);
    let open = sessions.len();
    if open > 0 {
        tracing::info!(open, "smtp: shutting down, waiting for sessions");
    }
    let drained = timeout(wait, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = sessions.len(),
            "smtp: sessions still running after shutdown were aborted"
        );
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
    Ok(())
}

struct Shared {
    config: Arc<Config>,
    connections: Mutex<Connections>,
    rate: Mutex<MessageRate>,
    ids: Ids,
}

/// A poisoned lock only means another session panicked while counting; the counts are
/// still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Internal message ids: seconds since the epoch, a random per-process part and a
/// counter, in hex (an RFC 5322 atom, fit for the `Received:` header).
struct Ids {
    process: u32,
    next: AtomicU64,
}

impl Ids {
    fn new() -> Self {
        let seed = RandomState::new().hash_one(std::process::id());
        Ids {
            process: (seed >> 32) as u32,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{secs:X}{:08X}{n:04X}", self.process)
    }
}

/// Uncounts the connection when the session ends, however it ends.
struct ConnectionGuard {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        lock(&self.shared.connections).close(self.ip);
    }
}

/// Counts the connection, or gives the 421 to refuse it with.
fn admit(shared: &Arc<Shared>, peer: SocketAddr) -> Result<ConnectionGuard, Reply> {
    let ip = peer.ip().to_canonical();
    let opened = lock(&shared.connections).open(ip);
    match opened {
        Ok(()) => Ok(ConnectionGuard {
            shared: Arc::clone(shared),
            ip,
        }),
        Err(refused) => {
            tracing::info!(client = %ip, ?refused, "smtp: connection refused");
            Err(match refused {
                Refused::Total => Session::too_many_connections(&shared.config.hostname),
                Refused::PerClient => {
                    Session::too_many_connections_from_client(&shared.config.hostname)
                }
            })
        }
    }
}

/// Sends the refusal and closes.
async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = timeout(CLOSE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

enum End {
    Closed,
    StartTls,
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

struct Connection<D> {
    session: Session,
    /// Replies not yet written.
    out: Vec<u8>,
    shared: Arc<Shared>,
    delivery: Arc<D>,
    stop: watch::Receiver<bool>,
    ip: IpAddr,
}

impl<D: Delivery> Connection<D> {
    async fn run(mut self, stream: TcpStream, guard: ConnectionGuard) {
        let _guard = guard;
        let _ = stream.set_nodelay(true);
        self.session.greeting().write_to(&mut self.out);
        let mut plain = BufReader::new(stream);
        match self.serve_on(&mut plain).await {
            Ok(End::Closed) => {}
            Ok(End::StartTls) => {
                let pipelined = plain.buffer().len();
                if pipelined > 0 {
                    // Plaintext sent behind STARTTLS must never count as sent under TLS
                    // (CVE-2011-0411).
                    tracing::warn!(
                        octets = pipelined,
                        "smtp: dropped input pipelined after STARTTLS"
                    );
                }
                let tcp = plain.into_inner();
                let Some(tls_config) = self.shared.config.tls.clone() else {
                    return;
                };
                let handshake = TlsAcceptor::from(tls_config).accept(tcp);
                match timeout(self.shared.config.command_timeout, handshake).await {
                    Ok(Ok(tls)) => {
                        self.session.tls_started();
                        let mut tls = BufReader::new(tls);
                        if let Err(error) = self.serve_on(&mut tls).await {
                            tracing::debug!(%error, "smtp: connection failed");
                        }
                    }
                    Ok(Err(error)) => tracing::info!(%error, "smtp: TLS handshake failed"),
                    Err(_) => tracing::info!("smtp: TLS handshake timed out"),
                }
            }
            Err(error) => tracing::debug!(%error, "smtp: connection failed"),
        }
    }

    /// Reads and answers commands until the session ends or asks for TLS.
    async fn serve_on<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
    ) -> io::Result<End> {
        let command_timeout = self.shared.config.command_timeout;
        let mut stop = self.stop.clone();
        let mut line = Vec::new();
        loop {
            if io.buffer().is_empty() {
                self.flush(io).await?;
            }
            if *stop.borrow() {
                let reply = self.session.shutting_down();
                self.close_with(io, reply).await;
                return Ok(End::Closed);
            }
            let read = tokio::select! {
                read = timeout(command_timeout, read_line(io, &mut line)) => read,
                () = stopped(&mut stop) => {
                    let reply = self.session.shutting_down();
                    self.close_with(io, reply).await;
                    return Ok(End::Closed);
                }
            };
            let step = match read {
                Err(_) => {
                    let reply = self.session.timed_out();
                    self.close_with(io, reply).await;
                    return Ok(End::Closed);
                }
                Ok(Err(error)) => return Err(error),
                Ok(Ok(Line::Eof)) => return Ok(End::Closed),
                Ok(Ok(Line::TooLong)) => self.session.line_too_long(),
                Ok(Ok(Line::Complete)) => self.session.command(&line),
            };
            match step {
                Step::Reply(reply) => reply.write_to(&mut self.out),
                Step::Close(reply) => {
                    self.close_with(io, reply).await;
                    return Ok(End::Closed);
                }
                Step::CheckRate => {
                    let allowed = lock(&self.shared.rate).allow(self.ip, Instant::now());
                    if !allowed {
                        tracing::info!("smtp: message rate exceeded");
                    }
                    self.session.rate_checked(allowed).write_to(&mut self.out);
                }
                Step::CheckRecipient { envelope, rcpt } => {
                    let verdict = self.delivery.check_recipient(&envelope, &rcpt).await;
                    self.session
                        .recipient_checked(verdict)
                        .write_to(&mut self.out);
                }
                Step::ReadData(reply) => {
                    reply.write_to(&mut self.out);
                    self.flush(io).await?;
                    match self.data(io).await? {
                        Some(reply) => reply.write_to(&mut self.out),
                        None => return Ok(End::Closed),
                    }
                }
                Step::StartTls(reply) => {
                    reply.write_to(&mut self.out);
                    self.flush(io).await?;
                    return Ok(End::StartTls);
                }
            }
        }
    }

    /// Reads the content after 354 and has it delivered; `None` when the connection is
    /// over (timeout, end of input).
    async fn data<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
    ) -> io::Result<Option<Reply>> {
        let id = self.shared.ids.next();
        let mut reader = self.session.begin_data(&id, OffsetDateTime::now_utc());
        let started = Instant::now();
        let content = timeout(self.shared.config.data_timeout, async {
            loop {
                let available = io.fill_buf().await?;
                if available.is_empty() {
                    return Ok::<bool, io::Error>(false);
                }
                let len = available.len();
                match reader.feed(available) {
                    Some(used) => {
                        io.consume(used);
                        return Ok(true);
                    }
                    None => io.consume(len),
                }
            }
        })
        .await;
        match content {
            Err(_) => {
                tracing::info!(%id, "smtp: DATA timed out");
                let reply = self.session.timed_out();
                self.close_with(io, reply).await;
                return Ok(None);
            }
            Ok(Err(error)) => return Err(error),
            Ok(Ok(false)) => {
                tracing::info!(%id, "smtp: connection ended during DATA");
                return Ok(None);
            }
            Ok(Ok(true)) => {}
        }
        let received = reader.finish();
        let read_ms = started.elapsed().as_millis();
        match self.session.data_received(received) {
            AfterData::Reply(reply) => {
                tracing::info!(%id, read_ms, code = reply.code(), "smtp: message refused");
                Ok(Some(reply))
            }
            AfterData::Deliver { envelope, message } => {
                let recipients = envelope.rcpt_to.len();
                let octets = message.len();
                let outcome = self.delivery.deliver(envelope, message).await;
                let result = match &outcome {
                    DeliveryOutcome::Accepted { .. } => "accepted",
                    DeliveryOutcome::TempFail { .. } => "temporary failure",
                    DeliveryOutcome::Reject { .. } => "rejected",
                };
                tracing::info!(%id, recipients, octets, read_ms, result, "smtp: message handed over");
                Ok(Some(self.session.delivered(outcome)))
            }
        }
    }

    /// Writes the queued replies.
    async fn flush<S: AsyncWrite + Unpin>(&mut self, io: &mut S) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = &self.out;
        let written = timeout(self.shared.config.command_timeout, async {
            io.write_all(out).await?;
            io.flush().await
        })
        .await;
        self.out.clear();
        match written {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client does not take our replies",
            )),
        }
    }

    /// Sends the last reply and closes (with TLS: close_notify).
    async fn close_with<S: AsyncWrite + Unpin>(&mut self, io: &mut S, reply: Reply) {
        reply.write_to(&mut self.out);
        let out = std::mem::take(&mut self.out);
        let wait = self.shared.config.command_timeout.min(CLOSE_TIMEOUT);
        let _ = timeout(wait, async {
            io.write_all(&out).await?;
            io.flush().await?;
            io.shutdown().await
        })
        .await;
    }
}

/// Resolves once shutdown is signalled (or `serve` is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Reads one line into `line` (without CRLF or bare LF). A line longer than
/// [`MAX_COMMAND_LINE`] is read to its end and discarded. A partial line at the end of
/// input counts as the end.
async fn read_line<R: AsyncBufRead + Unpin>(io: &mut R, line: &mut Vec<u8>) -> io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = io.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = match newline {
            Some(i) => available.split_at(i).0,
            None => available,
        };
        let chunk_len = chunk.len();
        // One more for a CR before the LF.
        if !too_long && line.len().saturating_add(chunk_len) > MAX_COMMAND_LINE.saturating_add(1) {
            too_long = true;
            line.clear();
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        if newline.is_some() {
            io.consume(chunk_len.saturating_add(1));
            break;
        }
        io.consume(chunk_len);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if too_long || line.len() > MAX_COMMAND_LINE {
        line.clear();
        return Ok(Line::TooLong);
    }
    Ok(Line::Complete)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn lines(input: &[u8]) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut reader = BufReader::with_capacity(7, input);
        let mut line = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut reader, &mut line).await.unwrap() {
                Line::Complete => got.push(Ok(line.clone())),
                Line::TooLong => got.push(Err("too long")),
                Line::Eof => return got,
            }
        }
    }

    #[tokio::test]
    async fn reads_lines_with_crlf_and_bare_lf() {
        assert_eq!(
            lines(b"EHLO a.example\r\nNOOP\nRSET\r\n\r\npartial").await,
            vec![
                Ok(b"EHLO a.example".to_vec()),
                Ok(b"NOOP".to_vec()),
                Ok(b"RSET".to_vec()),
                Ok(Vec::new())
            ]
        );
    }

    #[tokio::test]
    async fn overlong_lines_are_discarded_whole() {
        let mut input = b"NOOP ".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_COMMAND_LINE - 5));
        input.extend_from_slice(b"\r\n");
        input.extend_from_slice(b"NOOP ");
        input.extend(std::iter::repeat_n(b'x', MAX_COMMAND_LINE - 4));
        input.extend_from_slice(b"\r\nQUIT\r\n");
        let got = lines(&input).await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].as_ref().map(Vec::len), Ok(MAX_COMMAND_LINE));
        assert_eq!(got[1], Err("too long"));
        assert_eq!(got[2], Ok(b"QUIT".to_vec()));
    }

    #[test]
    fn ids_are_unique_atoms() {
        let ids = Ids::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
