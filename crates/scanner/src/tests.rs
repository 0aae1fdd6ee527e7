//! The client against fake clamds (in-test Unix and TCP listeners speaking the protocol),
//! for the cases a real clamd cannot be made to produce on demand.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;

use super::*;

/// What the fake does once it has read a request.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answer with these bytes (NUL included or not), then close.
    Reply(&'static [u8]),
    /// Like clamd at its StreamMaxLength: after this many data bytes, answer and close
    /// without reading the rest.
    ReplyAfter(usize, &'static [u8]),
    /// Close without a word.
    Close,
    /// Never answer.
    Hang,
}

/// What the fake received on one connection.
#[derive(Debug, Default)]
struct Received {
    command: Vec<u8>,
    chunk_lengths: Vec<usize>,
    data: Vec<u8>,
    terminated: bool,
}

struct Fake {
    url: ClamdUrl,
    received: mpsc::UnboundedReceiver<Received>,
    _dir: Option<tempfile::TempDir>,
}

impl Fake {
    async fn unix(behaviour: Behaviour) -> Fake {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clamd.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, behaviour, tx.clone()));
            }
        });
        Fake {
            url: ClamdUrl::Unix(path),
            received,
            _dir: Some(dir),
        }
    }

    async fn tcp(behaviour: Behaviour) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, behaviour, tx.clone()));
            }
        });
        Fake {
            url: ClamdUrl::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            received,
            _dir: None,
        }
    }

    fn client(&self) -> Clamd {
        Clamd::new(self.url.clone(), quick())
    }

    async fn next(&mut self) -> Received {
        self.received
            .recv()
            .await
            .expect("the fake saw a connection")
    }
}

fn quick() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        io: Duration::from_secs(5),
        scan: Duration::from_secs(5),
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    behaviour: Behaviour,
    tx: mpsc::UnboundedSender<Received>,
) {
    let mut received = Received::default();
    loop {
        match stream.read_u8().await {
            Ok(0) => break,
            Ok(b) => received.command.push(b),
            Err(_) => {
                let _ = tx.send(received);
                return;
            }
        }
    }
    if received.command == b"zINSTREAM" {
        while let Ok(len) = stream.read_u32().await {
            if len == 0 {
                received.terminated = true;
                break;
            }
            let mut chunk = vec![0u8; len as usize];
            if stream.read_exact(&mut chunk).await.is_err() {
                break;
            }
            received.chunk_lengths.push(chunk.len());
            received.data.extend_from_slice(&chunk);
            if let Behaviour::ReplyAfter(limit, reply) = behaviour
                && received.data.len() > limit
            {
                let _ = stream.write_all(reply).await;
                let _ = tx.send(received);
                return; // closes with the rest unread, as clamd does
            }
        }
    }
    match behaviour {
        Behaviour::Reply(reply) | Behaviour::ReplyAfter(_, reply) => {
            let _ = stream.write_all(reply).await;
        }
        Behaviour::Close => {}
        Behaviour::Hang => {
            let _ = tx.send(received);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
    }
    let _ = tx.send(received);
}

/// Bytes that differ from chunk to chunk, so misordered chunks would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
        .collect()
}

#[test]
fn parses_scan_replies() {
    assert_eq!(
        parse_scan_reply("stream: OK").expect("clean"),
        Verdict::Clean
    );
    assert_eq!(
        parse_scan_reply("stream: Win.Test.EICAR_HDB-1 FOUND").expect("infected"),
        Verdict::Infected {
            signature: "Win.Test.EICAR_HDB-1".into()
        }
    );
    assert_eq!(
        parse_scan_reply("stream: Rathaus.Test.EICAR-Body.UNOFFICIAL FOUND").expect("infected"),
        Verdict::Infected {
            signature: "Rathaus.Test.EICAR-Body.UNOFFICIAL".into()
        }
    );
    assert!(matches!(
        parse_scan_reply("INSTREAM size limit exceeded. ERROR"),
        Err(Error::TooLarge)
    ));
    match parse_scan_reply("stream: Can't allocate memory ERROR") {
        Err(Error::Scanner(message)) => assert_eq!(message, "Can't allocate memory"),
        other => panic!("{other:?}"),
    }
    match parse_scan_reply("COMMAND READ TIMED OUT ERROR") {
        Err(Error::Scanner(message)) => assert_eq!(message, "COMMAND READ TIMED OUT"),
        other => panic!("{other:?}"),
    }
    for garbage in [
        "",
        "PONG",
        "stream: FOUND",
        "stream:  FOUND",
        "stream: maybe",
        "OK",
    ] {
        assert!(
            matches!(parse_scan_reply(garbage), Err(Error::Protocol(_))),
            "{garbage:?}"
        );
    }
}

#[tokio::test]
async fn scan_sends_the_stream_in_framed_chunks() {
    let mut fake = Fake::unix(Behaviour::Reply(b"stream: OK\0")).await;
    let data = pattern(3 * CHUNK_SIZE + 1234);
    let verdict = fake.client().scan_bytes(&data).await.expect("scan");
    assert_eq!(verdict, Verdict::Clean);
    let received = fake.next().await;
    assert_eq!(received.command, b"zINSTREAM");
    assert!(received.terminated, "a zero-length chunk ends the stream");
    assert_eq!(
        received.chunk_lengths,
        [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 1234]
    );
    assert!(received.data == data, "clamd got exactly the bytes");
}

#[tokio::test]
async fn chunks_are_full_even_when_the_reader_yields_little() {
    let mut fake = Fake::unix(Behaviour::Reply(b"stream: OK\0")).await;
    let data = pattern(CHUNK_SIZE + 10);
    // A reader that hands out 1000 bytes per read, like a network body.
    let (mut tx, rx) = tokio::io::duplex(1000);
    let writer = {
        let data = data.clone();
        tokio::spawn(async move { tx.write_all(&data).await })
    };
    let verdict = fake.client().scan_stream(rx).await.expect("scan");
    writer.await.expect("join").expect("write");
    assert_eq!(verdict, Verdict::Clean);
    let received = fake.next().await;
    assert_eq!(received.chunk_lengths, [CHUNK_SIZE, 10]);
    assert!(received.data == data);
}

#[tokio::test]
async fn empty_input_is_just_the_terminator() {
    let mut fake = Fake::unix(Behaviour::Reply(b"stream: OK\0")).await;
    assert_eq!(
        fake.client().scan_bytes(b"").await.expect("scan"),
        Verdict::Clean
    );
    let received = fake.next().await;
    assert!(received.terminated);
    assert!(received.chunk_lengths.is_empty());
}

#[tokio::test]
async fn infected_reply_gives_the_signature() {
    let fake = Fake::unix(Behaviour::Reply(b"stream: Some.Signature-1 FOUND\0")).await;
    assert_eq!(
        fake.client().scan_bytes(b"whatever").await.expect("scan"),
        Verdict::Infected {
            signature: "Some.Signature-1".into()
        }
    );
}

#[tokio::test]
async fn size_limit_reply_is_too_large() {
    let fake = Fake::unix(Behaviour::Reply(b"INSTREAM size limit exceeded. ERROR\0")).await;
    let err = fake.client().scan_bytes(b"x").await.expect_err("too large");
    assert!(matches!(err, Error::TooLarge), "{err:?}");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn size_limit_while_still_sending_is_too_large() {
    // clamd answers and closes mid-stream; the client's next writes fail, and it must
    // still read the answer instead of reporting a broken connection.
    let mut fake = Fake::unix(Behaviour::ReplyAfter(
        CHUNK_SIZE,
        b"INSTREAM size limit exceeded. ERROR\0",
    ))
    .await;
    let err = fake
        .client()
        .scan_stream(tokio::io::repeat(7).take(64 * 1024 * 1024))
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::TooLarge), "{err:?}");
    let received = fake.next().await;
    assert!(!received.terminated);
}

#[tokio::test]
async fn client_side_limit_stops_early() {
    let fake = Fake::unix(Behaviour::Reply(b"stream: OK\0")).await;
    let client = fake.client().with_max_stream_len(100);
    assert_eq!(
        client.scan_bytes(&[1; 100]).await.expect("at the limit"),
        Verdict::Clean
    );
    let err = client
        .scan_bytes(&[1; 101])
        .await
        .expect_err("over the limit");
    assert!(matches!(err, Error::TooLarge), "{err:?}");
}

#[tokio::test]
async fn scanner_error_is_passed_on() {
    let fake = Fake::unix(Behaviour::Reply(
        b"stream: Can't create temporary file ERROR\0",
    ))
    .await;
    match fake.client().scan_bytes(b"x").await {
        Err(Error::Scanner(message)) => assert_eq!(message, "Can't create temporary file"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn overlong_reply_is_a_protocol_error() {
    static LONG: [u8; 10_000] = [b'A'; 10_000];
    let fake = Fake::unix(Behaviour::Reply(&LONG)).await;
    let err = fake.client().scan_bytes(b"x").await.expect_err("too long");
    assert!(
        matches!(&err, Error::Protocol(m) if m.starts_with("reply longer than")),
        "{err:?}"
    );
}

#[tokio::test]
async fn reply_without_nul_before_close_is_accepted() {
    let fake = Fake::unix(Behaviour::Reply(b"stream: OK")).await;
    assert_eq!(
        fake.client().scan_bytes(b"x").await.expect("scan"),
        Verdict::Clean
    );
}

#[tokio::test]
async fn close_without_reply_is_an_io_error() {
    let fake = Fake::unix(Behaviour::Close).await;
    let err = fake.client().scan_bytes(b"x").await.expect_err("no reply");
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn silent_clamd_times_out() {
    let fake = Fake::unix(Behaviour::Hang).await;
    let client = Clamd::new(
        fake.url.clone(),
        Timeouts {
            scan: Duration::from_millis(200),
            io: Duration::from_millis(200),
            ..quick()
        },
    );
    let err = client.scan_bytes(b"x").await.expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_transient());
    let err = client.ping().await.expect_err("timeout");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn ping_and_version() {
    let mut fake = Fake::unix(Behaviour::Reply(b"PONG\0")).await;
    fake.client().ping().await.expect("pong");
    assert_eq!(fake.next().await.command, b"zPING");

    let fake = Fake::unix(Behaviour::Reply(b"PANG\0")).await;
    let err = fake.client().ping().await.expect_err("not pong");
    assert!(matches!(&err, Error::Protocol(r) if r == "PANG"), "{err:?}");

    let mut fake = Fake::unix(Behaviour::Reply(
        b"ClamAV 1.4.6/27500/Tue Dec 10 09:30:00 2024\0",
    ))
    .await;
    assert_eq!(
        fake.client().version().await.expect("version"),
        "ClamAV 1.4.6/27500/Tue Dec 10 09:30:00 2024"
    );
    assert_eq!(fake.next().await.command, b"zVERSION");
}

#[tokio::test]
async fn works_over_tcp() {
    let mut fake = Fake::tcp(Behaviour::Reply(b"stream: Tcp.Sig FOUND\0")).await;
    let data = pattern(CHUNK_SIZE * 2);
    assert_eq!(
        fake.client().scan_bytes(&data).await.expect("scan"),
        Verdict::Infected {
            signature: "Tcp.Sig".into()
        }
    );
    assert!(fake.next().await.data == data);
}

#[tokio::test]
async fn missing_socket_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = ClamdUrl::Unix(dir.path().join("nothing-here.sock"));
    let client = Clamd::new(url, quick());
    for err in [
        client.ping().await.expect_err("unreachable"),
        client.scan_bytes(b"x").await.expect_err("unreachable"),
    ] {
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
        assert!(err.is_transient());
        assert!(err.to_string().contains("nothing-here.sock"), "{err}");
    }
}

#[tokio::test]
async fn closed_tcp_port_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let client = Clamd::new(
        ClamdUrl::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        quick(),
    );
    let err = client.ping().await.expect_err("refused");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}

#[tokio::test]
async fn failing_input_is_an_input_error() {
    struct Broken;
    impl AsyncRead for Broken {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            std::task::Poll::Ready(Err(io::Error::other("disk on fire")))
        }
    }
    let fake = Fake::unix(Behaviour::Reply(b"stream: OK\0")).await;
    let err = fake.client().scan_stream(Broken).await.expect_err("input");
    assert!(
        matches!(&err, Error::Input(e) if e.to_string() == "disk on fire"),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

#[test]
fn futures_are_send() {
    // Handlers spawn them on a multi-threaded runtime.
    fn assert_send<T: Send>(_: &T) {}
    let client = Clamd::new(ClamdUrl::Unix("/nonexistent".into()), quick());
    assert_send(&client.scan_stream(&b"data"[..]));
    assert_send(&client.scan_bytes(b"data"));
    assert_send(&client.ping());
    assert_send(&client.version());
}
