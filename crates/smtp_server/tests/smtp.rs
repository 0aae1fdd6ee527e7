//! The server over real sockets: raw conversations (sequencing, limits, pipelining,
//! STARTTLS and what must not survive it, shutdown), Python's smtplib and swaks.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls_pki_types::{CertificateDer, ServerName};
use smtp_server::{Config, Delivery, DeliveryOutcome, Envelope, RcptVerdict, load_tls, serve};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Longest wait for anything the server should do promptly.
const WAIT: Duration = Duration::from_secs(5);

/// Records what it is given. Recipients `…@unknown.example` are refused `550 5.1.1`; a
/// message to `tempfail@…` is answered 451, to `reject@…` 554.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

impl Recorder {
    fn messages(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.messages.lock().unwrap().clone()
    }
}

impl Delivery for Recorder {
    async fn check_recipient(&self, _env: &Envelope, rcpt: &str) -> RcptVerdict {
        if rcpt.to_ascii_lowercase().ends_with("@unknown.example") {
            RcptVerdict::Reject {
                code: 550,
                enhanced: "5.1.1".into(),
                text: "no such mailbox".into(),
            }
        } else {
            RcptVerdict::Accept
        }
    }

    async fn deliver(&self, env: Envelope, message: Vec<u8>) -> DeliveryOutcome {
        if env.rcpt_to.iter().any(|r| r.starts_with("tempfail@")) {
            return DeliveryOutcome::TempFail {
                text: "storage unavailable".into(),
            };
        }
        if env.rcpt_to.iter().any(|r| r.starts_with("reject@")) {
            return DeliveryOutcome::Reject {
                code: 554,
                enhanced: "5.6.0".into(),
                text: "content refused".into(),
            };
        }
        let mut messages = self.messages.lock().unwrap();
        messages.push((env, message));
        DeliveryOutcome::Accepted {
            id: format!("m{}", messages.len()),
        }
    }
}

struct Server {
    addr: SocketAddr,
    delivery: Arc<Recorder>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

fn config() -> Config {
    Config {
        hostname: "mx.test.example".into(),
        ..Config::default()
    }
}

async fn start(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let delivery = Arc::new(Recorder::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        Arc::new(config),
        Arc::clone(&delivery),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        delivery,
        stop: Some(stop),
        task,
    }
}

impl Server {
    async fn shut_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(WAIT, self.task).await.unwrap().unwrap().unwrap();
    }
}

struct Client<S> {
    io: BufReader<S>,
}

impl Client<TcpStream> {
    /// Connects and reads the greeting.
    async fn connect(addr: SocketAddr) -> (Self, String) {
        let mut client = Client::raw(addr).await;
        let greeting = client.reply().await;
        (client, greeting)
    }

    async fn raw(addr: SocketAddr) -> Self {
        let stream = timeout(WAIT, TcpStream::connect(addr))
            .await
            .unwrap()
            .unwrap();
        Client {
            io: BufReader::new(stream),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, data: impl AsRef<[u8]>) {
        self.io.get_mut().write_all(data.as_ref()).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// One reply; multi-line replies joined with `\n`.
    async fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = timeout(WAIT, self.io.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no reply in time after {lines:?}"))
                .unwrap();
            assert!(n > 0, "connection closed after {lines:?}");
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    async fn cmd(&mut self, command: &str) -> String {
        self.send(format!("{command}\r\n")).await;
        self.reply().await
    }

    /// The server closes the connection (no further reply).
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = timeout(WAIT, self.io.read_to_end(&mut rest)).await.unwrap();
        if read.is_ok() {
            assert_eq!(
                String::from_utf8_lossy(&rest),
                "",
                "unexpected data before close"
            );
        }
    }

    /// EHLO, MAIL, RCPT and DATA for one recipient, each answered as expected.
    async fn start_message(&mut self, from: &str, to: &str) {
        assert!(self.cmd("EHLO client.example").await.starts_with("250-"));
        assert_code(&self.cmd(&format!("MAIL FROM:<{from}>")).await, "250 2.1.0");
        assert_code(&self.cmd(&format!("RCPT TO:<{to}>")).await, "250 2.1.5");
        assert_code(&self.cmd("DATA").await, "354");
    }
}

#[track_caller]
fn assert_code(reply: &str, code: &str) {
    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
}

/// The message without our `Received:` header.
fn body_of(message: &[u8]) -> &[u8] {
    let text = message;
    // The header is folded: it ends at the first CRLF not followed by a tab.
    let mut i = 0;
    while i + 2 < text.len() {
        if &text[i..i + 2] == b"\r\n" && text[i + 2] != b'\t' {
            return &text[i + 2..];
        }
        i += 1;
    }
    &[]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequencing_and_syntax_errors() {
    let server = start(Config {
        max_errors: 100,
        ..config()
    })
    .await;
    let (mut c, greeting) = Client::connect(server.addr).await;
    assert_eq!(greeting, "220 mx.test.example ESMTP Rathaus ePoststelle");
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.example>").await,
        "503 5.5.1 send EHLO or HELO first"
    );
    assert_code(&c.cmd("RCPT TO:<a@stadt.example>").await, "503 5.5.1");
    assert_code(&c.cmd("DATA").await, "503 5.5.1");
    assert_eq!(c.cmd("EHLO").await.get(..4), Some("501 "));
    let ehlo = c.cmd("EHLO client.example").await;
    let lines: Vec<&str> = ehlo.lines().collect();
    assert_eq!(
        lines,
        [
            "250-mx.test.example greets client.example [127.0.0.1]",
            "250-8BITMIME",
            "250-SIZE 31457280",
            "250-PIPELINING",
            "250-ENHANCEDSTATUSCODES",
            "250-SMTPUTF8",
            "250 HELP",
        ]
    );
    assert_eq!(
        c.cmd("RCPT TO:<a@stadt.example>").await,
        "503 5.5.1 need MAIL before RCPT"
    );
    assert_eq!(c.cmd("FROB").await, "500 5.5.2 command unrecognized");
    assert_code(&c.cmd("MAIL FROM:<broken").await, "501 5.1.7");
    assert_code(
        &c.cmd("MAIL FROM:<a@sender.example> NOTIFY=NEVER").await,
        "555 5.5.4",
    );
    assert_code(
        &c.cmd("MAIL FROM:<a@sender.example> BODY=BINARYMIME").await,
        "501 5.5.4",
    );
    assert_code(&c.cmd("STARTTLS").await, "454 4.7.0");
    assert_code(&c.cmd("VRFY poststelle").await, "252 2.5.0");
    assert!(c.cmd("HELP").await.starts_with("214-2.0.0"));
    assert_code(&c.cmd("noop").await, "250 2.0.0");
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "503 5.5.1");
    assert_eq!(c.cmd("DATA").await, "503 5.5.1 need RCPT before DATA");
    assert_code(
        &c.cmd("RCPT TO:<nobody@unknown.example>").await,
        "550 5.1.1",
    );
    assert_eq!(c.cmd("DATA").await, "554 5.5.1 no valid recipients");
    assert_code(&c.cmd("RSET").await, "250 2.0.0");
    assert_code(&c.cmd("RCPT TO:<a@stadt.example>").await, "503 5.5.1");
    assert_eq!(
        c.cmd("QUIT").await,
        "221 2.0.0 mx.test.example closing connection"
    );
    c.expect_closed().await;
    assert!(server.delivery.messages().is_empty());
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_lines_are_refused_and_the_connection_stays_usable() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    // Longer than RFC 5321's 512 but within our leniency.
    assert_code(
        &c.cmd(&format!("NOOP {}", "x".repeat(1000))).await,
        "250 2.0.0",
    );
    assert_eq!(
        c.cmd(&format!("NOOP {}", "x".repeat(100_000))).await,
        "500 5.5.2 line too long (at most 2048 octets)"
    );
    // Bare LF works as a line end for commands.
    c.send("EHLO client.example\n").await;
    assert!(c.reply().await.starts_with("250-"));
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    let long_address = format!("<{}@stadt.example>", "l".repeat(250));
    assert_code(
        &c.cmd(&format!("RCPT TO:{long_address}")).await,
        "501 5.1.3",
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_get_batched_replies() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.send(
        "EHLO client.example\r\nMAIL FROM:<sender@sender.example>\r\n\
         RCPT TO:<poststelle@stadt.example>\r\nRCPT TO:<nobody@unknown.example>\r\nDATA\r\n",
    )
    .await;
    // All five replies come in one write (and so, on loopback, in one read).
    let first_read = timeout(WAIT, c.io.fill_buf()).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(first_read).into_owned();
    assert_eq!(text.matches("\r\n").count(), 7 + 4, "one batch: {text:?}");
    assert!(c.reply().await.starts_with("250-mx.test.example"));
    assert_code(&c.reply().await, "250 2.1.0");
    assert_code(&c.reply().await, "250 2.1.5");
    assert_eq!(c.reply().await, "550 5.1.1 no such mailbox");
    assert_code(&c.reply().await, "354");
    // Content, end and QUIT in one go.
    c.send("Subject: pipelined\r\n\r\nHallo\r\n.\r\nQUIT\r\n")
        .await;
    assert_eq!(c.reply().await, "250 2.0.0 OK m1");
    assert_code(&c.reply().await, "221 2.0.0");
    c.expect_closed().await;

    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 1);
    let (env, message) = &messages[0];
    assert_eq!(env.mail_from, "sender@sender.example");
    assert_eq!(env.rcpt_to, ["poststelle@stadt.example"]);
    assert_eq!(env.helo, "client.example");
    assert!(!env.tls && !env.smtputf8 && !env.body_8bit);
    assert_eq!(body_of(message), b"Subject: pipelined\r\n\r\nHallo\r\n");
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_stuffing_line_ends_and_the_received_header() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.start_message("a@sender.example", "poststelle@stadt.example")
        .await;
    // Stuffed dots, a bare LF, and a smuggling attempt with bare line ends.
    c.send(
        "Subject: dots\r\n\r\n..one\r\n...two\r\n..\r\nx\ny\r\nsmuggle\n.\nMAIL FROM:<evil@x.example>\r\n.\r\n",
    )
    .await;
    assert_eq!(c.reply().await, "250 2.0.0 OK m1");
    assert_code(&c.cmd("NOOP").await, "250 2.0.0");
    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0].1;
    let text = String::from_utf8(message.clone()).unwrap();
    assert!(
        text.starts_with(
            "Received: from client.example ([127.0.0.1])\r\n\tby mx.test.example with ESMTP id "
        ),
        "{text}"
    );
    assert!(
        text.contains("\r\n\tfor <poststelle@stadt.example>;\r\n\t"),
        "{text}"
    );
    assert_eq!(
        String::from_utf8_lossy(body_of(message)),
        "Subject: dots\r\n\r\n.one\r\n..two\r\n.\r\nx\r\ny\r\nsmuggle\r\n.\r\nMAIL FROM:<evil@x.example>\r\n"
    );
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_sender_and_the_delivery_outcomes() {
    let server = start(config()).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.start_message("", "poststelle@stadt.example").await;
    c.send("Subject: bounce\r\n\r\n.\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 OK m1");
    // Never 250 unless the delivery accepted.
    assert_code(&c.cmd("MAIL FROM:<>").await, "250 2.1.0");
    assert_code(
        &c.cmd("RCPT TO:<tempfail@stadt.example>").await,
        "250 2.1.5",
    );
    assert_code(&c.cmd("DATA").await, "354");
    assert_eq!(c.cmd("x\r\n.").await, "451 4.3.0 storage unavailable");
    assert_code(&c.cmd("MAIL FROM:<>").await, "250 2.1.0");
    assert_code(&c.cmd("RCPT TO:<reject@stadt.example>").await, "250 2.1.5");
    assert_code(&c.cmd("DATA").await, "354");
    assert_eq!(c.cmd("x\r\n.").await, "554 5.6.0 content refused");
    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0.mail_from, "");
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_is_refused_at_mail_and_during_data() {
    let server = start(Config {
        max_message_bytes: 1000,
        ..config()
    })
    .await;
    let (mut c, _) = Client::connect(server.addr).await;
    assert!(
        c.cmd("EHLO client.example")
            .await
            .contains("250-SIZE 1000\n")
    );
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.example> SIZE=1001").await,
        "552 5.3.4 message size exceeds fixed maximum message size (1000 octets)"
    );
    assert_code(
        &c.cmd("MAIL FROM:<a@sender.example> SIZE=900").await,
        "250 2.1.0",
    );
    assert_code(
        &c.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "250 2.1.5",
    );
    assert_code(&c.cmd("DATA").await, "354");
    // 100 lines of 100 octets: ten times the limit, all read and discarded.
    let line = format!("{}\r\n", "y".repeat(98));
    c.send(line.repeat(100)).await;
    assert_eq!(
        c.cmd(".").await,
        "552 5.3.4 message exceeds fixed maximum message size (1000 octets)"
    );
    // The connection goes on; exactly the limit is fine.
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    assert_code(
        &c.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "250 2.1.5",
    );
    assert_code(&c.cmd("DATA").await, "354");
    c.send(line.repeat(10)).await;
    assert_eq!(c.cmd(".").await, "250 2.0.0 OK m1");
    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(body_of(&messages[0].1).len(), 1000);
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipient_limit() {
    let server = start(Config {
        max_recipients: 3,
        ..config()
    })
    .await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    for i in 1..=3 {
        assert_code(
            &c.cmd(&format!("RCPT TO:<r{i}@stadt.example>")).await,
            "250 2.1.5",
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<r4@stadt.example>").await,
        "452 4.5.3 too many recipients (at most 3 per message)"
    );
    assert_code(&c.cmd("DATA").await, "354");
    assert_eq!(
        c.cmd("Subject: many\r\n\r\nx\r\n.").await,
        "250 2.0.0 OK m1"
    );
    let messages = server.delivery.messages();
    assert_eq!(
        messages[0].0.rcpt_to,
        ["r1@stadt.example", "r2@stadt.example", "r3@stadt.example"]
    );
    // No `for` with several recipients.
    assert!(!String::from_utf8_lossy(&messages[0].1).contains("\tfor <"));
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_rate_per_client() {
    let server = start(Config {
        max_messages_per_ip_per_minute: 2,
        ..config()
    })
    .await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    for _ in 0..2 {
        assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
        assert_code(&c.cmd("RSET").await, "250 2.0.0");
    }
    assert_eq!(
        c.cmd("MAIL FROM:<a@sender.example>").await,
        "450 4.7.1 too many messages from your address, try again later"
    );
    // A new connection does not reset the count.
    let (mut d, _) = Client::connect(server.addr).await;
    d.cmd("EHLO client.example").await;
    assert_code(&d.cmd("MAIL FROM:<a@sender.example>").await, "450 4.7.1");
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits() {
    let server = start(Config {
        max_connections: 2,
        ..config()
    })
    .await;
    let (a, _) = Client::connect(server.addr).await;
    let (_b, _) = Client::connect(server.addr).await;
    let (mut c, greeting) = Client::connect(server.addr).await;
    assert_eq!(
        greeting,
        "421 4.3.2 mx.test.example too many connections, try again later"
    );
    c.expect_closed().await;
    // A closed connection frees its place.
    drop(a);
    let started = Instant::now();
    loop {
        let (_c, greeting) = Client::connect(server.addr).await;
        if greeting.starts_with("220 ") {
            break;
        }
        assert!(started.elapsed() < WAIT, "the place was not freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shut_down().await;

    let server = start(Config {
        max_connections_per_ip: 1,
        ..config()
    })
    .await;
    let (_a, greeting) = Client::connect(server.addr).await;
    assert_code(&greeting, "220 ");
    let (mut b, greeting) = Client::connect(server.addr).await;
    assert_eq!(
        greeting,
        "421 4.7.0 mx.test.example too many connections from your address, try again later"
    );
    b.expect_closed().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_errors_close_the_connection() {
    let server = start(Config {
        max_errors: 2,
        ..config()
    })
    .await;
    let (mut c, _) = Client::connect(server.addr).await;
    assert_code(&c.cmd("FROB").await, "500 5.5.2");
    assert_code(&c.cmd("DATA").await, "503 5.5.1");
    assert_eq!(
        c.cmd("FROB").await,
        "421 4.7.0 mx.test.example too many errors, closing connection"
    );
    c.expect_closed().await;
    // Someone speaking HTTP is shown the door at once.
    let (mut d, _) = Client::connect(server.addr).await;
    assert_code(&d.cmd("GET / HTTP/1.1").await, "421 4.7.0");
    d.expect_closed().await;
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts() {
    let server = start(Config {
        command_timeout: Duration::from_millis(300),
        data_timeout: Duration::from_millis(400),
        ..config()
    })
    .await;
    let started = Instant::now();
    let (mut c, _) = Client::connect(server.addr).await;
    assert_eq!(
        c.reply().await,
        "421 4.4.2 mx.test.example timeout exceeded, closing connection"
    );
    c.expect_closed().await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The DATA timeout is for the whole content, however the client trickles it.
    let (mut d, _) = Client::connect(server.addr).await;
    d.start_message("a@sender.example", "poststelle@stadt.example")
        .await;
    let started = Instant::now();
    for _ in 0..3 {
        d.send("x\r\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = d.reply().await;
    assert_code(&reply, "421 4.4.2");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(server.delivery.messages().is_empty());
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_data_finish_and_answers_others_421() {
    let mut server = start(config()).await;
    let (mut idle, _) = Client::connect(server.addr).await;
    assert!(idle.cmd("EHLO idle.example").await.starts_with("250-"));
    let (mut busy, _) = Client::connect(server.addr).await;
    busy.start_message("a@sender.example", "poststelle@stadt.example")
        .await;
    busy.send("Subject: in flight\r\n\r\npart one").await;

    let _ = server.stop.take().unwrap().send(());
    assert_eq!(
        idle.reply().await,
        "421 4.3.2 mx.test.example shutting down, try again later"
    );
    idle.expect_closed().await;
    // No longer accepting.
    assert!(TcpStream::connect(server.addr).await.is_err());

    busy.send(", part two\r\n.\r\n").await;
    assert_eq!(busy.reply().await, "250 2.0.0 OK m1");
    assert_code(&busy.reply().await, "421 4.3.2");
    busy.expect_closed().await;
    timeout(WAIT, server.task).await.unwrap().unwrap().unwrap();
    let messages = server.delivery.messages();
    assert_eq!(
        body_of(&messages[0].1),
        b"Subject: in flight\r\n\r\npart one, part two\r\n"
    );
}

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct TestCert {
    _dir: tempfile::TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
    der: CertificateDer<'static>,
}

fn test_cert() -> TestCert {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, generated.cert.pem()).unwrap();
    std::fs::write(&key_path, generated.signing_key.serialize_pem()).unwrap();
    TestCert {
        der: generated.cert.der().clone(),
        _dir: dir,
        cert_path,
        key_path,
    }
}

async fn start_tls(cert: &TestCert) -> Server {
    start(Config {
        tls: Some(load_tls(&cert.cert_path, &cert.key_path).unwrap()),
        ..config()
    })
    .await
}

async fn tls_upgrade(
    stream: TcpStream,
    cert: &TestCert,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    timeout(
        WAIT,
        connector.connect(ServerName::try_from("localhost").unwrap(), stream),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_resets_the_session() {
    let cert = test_cert();
    let server = start_tls(&cert).await;
    let (mut c, _) = Client::connect(server.addr).await;
    assert!(
        c.cmd("EHLO client.example")
            .await
            .contains("\n250-STARTTLS\n")
    );
    assert_code(&c.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    assert_eq!(c.cmd("STARTTLS").await, "220 2.0.0 ready to start TLS");
    assert!(c.io.buffer().is_empty());
    let tls = tls_upgrade(c.io.into_inner(), &cert).await.unwrap();
    let mut t = Client {
        io: BufReader::new(tls),
    };
    // Everything from before is gone, EHLO again first.
    assert_code(
        &t.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "503 5.5.1",
    );
    assert_eq!(
        t.cmd("MAIL FROM:<a@sender.example>").await,
        "503 5.5.1 send EHLO or HELO first"
    );
    let ehlo = t.cmd("EHLO client.example").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert_eq!(t.cmd("STARTTLS").await, "454 4.7.0 TLS already active");
    assert_code(&t.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    assert_code(
        &t.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "250 2.1.5",
    );
    assert_code(&t.cmd("DATA").await, "354");
    assert_eq!(
        t.cmd("Subject: secret\r\n\r\nx\r\n.").await,
        "250 2.0.0 OK m1"
    );
    assert_code(&t.cmd("QUIT").await, "221 2.0.0");
    let messages = server.delivery.messages();
    assert!(messages[0].0.tls);
    assert!(String::from_utf8_lossy(&messages[0].1).contains(" with ESMTPS id "));
    server.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_pipelined_after_starttls_are_dropped() {
    let cert = test_cert();
    let server = start_tls(&cert).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.cmd("EHLO client.example").await;
    // A man in the middle appends plaintext commands to the client's STARTTLS.
    c.send("STARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<evil@x.example>\r\n")
        .await;
    assert_eq!(c.reply().await, "220 2.0.0 ready to start TLS");
    let tls = tls_upgrade(c.io.into_inner(), &cert).await.unwrap();
    let mut t = Client {
        io: BufReader::new(tls),
    };
    // Had the injected commands been run, their replies would come first and MAIL would
    // be accepted after our EHLO only with a transaction open.
    assert_code(
        &t.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "503 5.5.1",
    );
    assert!(
        t.cmd("EHLO client.example")
            .await
            .starts_with("250-mx.test.example greets client.example")
    );
    assert_code(
        &t.cmd("RCPT TO:<poststelle@stadt.example>").await,
        "503 5.5.1",
    );
    assert_code(&t.cmd("MAIL FROM:<a@sender.example>").await, "250 2.1.0");
    server.shut_down().await;
}

/// Runs a blocking program off the async workers; `None` if it cannot be started.
async fn run_program(program: &str, args: Vec<String>) -> Option<std::process::Output> {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(program).args(args).output().ok()
    })
    .await
    .unwrap()
}

const PYTHON: &str = "/usr/bin/python3";

const SMTPLIB_SCRIPT: &str = r#"
import smtplib, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=cafile)
message = (
    "From: Jörg Bürger <jörg@bürger.example>\r\n"
    "To: poststelle@stadt.example\r\n"
    "Subject: Grüße aus Köln\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Ärger über das Bußgeld.\r\n"
    ".Zeile mit Punkt\r\n"
).encode("utf-8")
with smtplib.SMTP("127.0.0.1", port, local_hostname="python.example", timeout=10) as smtp:
    smtp.ehlo()
    assert smtp.has_extn("starttls"), "STARTTLS not offered"
    smtp.starttls(context=context)
    smtp.ehlo()
    assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime")
    refused = smtp.sendmail(
        "jörg@bürger.example",
        ["poststelle@stadt.example", "nobody@unknown.example"],
        message,
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    assert list(refused) == ["nobody@unknown.example"], refused
    assert refused["nobody@unknown.example"][0] == 550
print("sent")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_smtplib_with_starttls_and_smtputf8() {
    if !Path::new(PYTHON).exists() {
        println!("note: {PYTHON} missing, smtplib test skipped");
        return;
    }
    let cert = test_cert();
    let server = start_tls(&cert).await;
    let args = vec![
        "-c".to_owned(),
        SMTPLIB_SCRIPT.to_owned(),
        server.addr.port().to_string(),
        cert.cert_path.display().to_string(),
    ];
    let output = run_program(PYTHON, args).await.unwrap();
    assert!(
        output.status.success(),
        "smtplib failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 1);
    let (env, message) = &messages[0];
    assert_eq!(env.mail_from, "jörg@bürger.example");
    assert_eq!(env.rcpt_to, ["poststelle@stadt.example"]);
    assert_eq!(env.helo, "python.example");
    assert!(env.tls && env.smtputf8 && env.body_8bit);
    let text = String::from_utf8(message.clone()).unwrap();
    assert!(text.starts_with(
        "Received: from python.example ([127.0.0.1])\r\n\tby mx.test.example with UTF8SMTPS id "
    ));
    assert!(text.contains("\r\nSubject: Grüße aus Köln\r\n"));
    assert!(
        text.ends_with("\r\n\r\nÄrger über das Bußgeld.\r\n.Zeile mit Punkt\r\n"),
        "{text}"
    );
    server.shut_down().await;
}

/// Whether swaks can run here; fails instead when RATHAUS_TEST_REQUIRE_SWAKS=1.
async fn swaks_available() -> bool {
    let found = run_program("swaks", vec!["--version".to_owned()])
        .await
        .is_some_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("RATHAUS_TEST_REQUIRE_SWAKS").as_deref() != Ok("1"),
            "swaks is required (RATHAUS_TEST_REQUIRE_SWAKS=1) but not on PATH"
        );
        println!("note: swaks not on PATH, swaks test skipped (apt-get install swaks)");
    }
    found
}

async fn swaks(addr: SocketAddr, extra: &[&str]) {
    let mut args: Vec<String> = [
        "--server",
        "127.0.0.1",
        "--port",
        &addr.port().to_string(),
        "--ehlo",
        "swaks.example",
        "--from",
        "buerger@sender.example",
        "--to",
        "poststelle@stadt.example",
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let output = run_program("swaks", args).await.unwrap();
    assert!(
        output.status.success(),
        "swaks failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_plain_message_and_attachment() {
    if !swaks_available().await {
        return;
    }
    let server = start(config()).await;
    swaks(
        server.addr,
        &[
            "--pipeline",
            "--header",
            "Subject: swaks plain",
            "--body",
            "Hallo Poststelle",
        ],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let attachment: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = dir.path().join("antrag.bin");
    std::fs::write(&path, &attachment).unwrap();
    let attach = format!("@{}", path.display());
    swaks(
        server.addr,
        &["--header", "Subject: swaks attachment", "--attach", &attach],
    )
    .await;

    let messages = server.delivery.messages();
    assert_eq!(messages.len(), 2);
    let plain = String::from_utf8(messages[0].1.clone()).unwrap();
    assert_eq!(messages[0].0.helo, "swaks.example");
    assert!(plain.contains("\r\nSubject: swaks plain\r\n"));
    assert!(plain.contains("\r\n\r\nHallo Poststelle\r\n"));

    let mime = String::from_utf8(messages[1].1.clone()).unwrap();
    assert!(mime.contains("multipart/mixed"));
    let part = mime.split("antrag.bin").last().unwrap();
    let encoded = part
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("\r\n--")
        .next()
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.replace("\r\n", ""))
        .unwrap();
    assert_eq!(decoded, attachment);
    server.shut_down().await;
}
