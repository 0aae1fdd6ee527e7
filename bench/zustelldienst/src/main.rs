//! `bench-zustelldienst DEMO_JSON CONCURRENCY SECONDS [ATTACHMENT_BYTES]`
//!
//! Many concurrent senders run the full FIT-Connect flow against the demo's external
//! destination (token fetched once per sender and reused): POST /submissions, PUT one
//! attachment, PUT /submissions/{id}. Prints one line of figures per phase:
//! acknowledged submissions/s, flow latency p50/p99, errors; then waits until the service
//! has signed every event (admin status `unsignedEvents` = 0) and prints the sustained
//! rate over load + catch-up. Also measures the signing bound in the same run: PS512
//! signatures/s with an RSA-4096 key on all cores, halved (two SETs per submission).
//!
//! Crash-test mode (`tests/crash/zustelldienst-kill9.sh`), chosen by the environment:
//!
//! * `LOADGEN_ACK_LOG=FILE`: after each 202 answer to the final submit, one line
//!   `<submissionId> <caseId>` is appended to FILE (one `write` per line, so a line exists
//!   only for an acknowledged submit). The generator then tolerates the server going away:
//!   connection errors, 5xx and 401 (a new token is fetched) are counted, and after a short
//!   sleep a fresh flow starts, until the time is up or SIGTERM/SIGINT arrives (flows in
//!   flight finish first). It prints one `CRASHLOAD key=value …` line instead of the
//!   benchmark figures, and skips the signing catch-up and the signing bound.
//! * `LOADGEN_CREATE_LOG=FILE` (with the above): the same for each 201 to `POST
//!   /submissions`, so that acknowledged but never submitted submissions can be checked too.
//!
//! `bench-zustelldienst verify DEMO_JSON ACK_LOG [CREATE_LOG]` checks such logs against the
//! running server as the demo's subscriber (see `verify.rs`).
//!
//! `bench-zustelldienst epoststelle preload|measure|bound …`: the ePoststelle pipeline
//! benchmark's steps (`bench/epoststelle.sh`, see `epoststelle.rs`).
#![allow(clippy::unwrap_used)]

mod epoststelle;
mod verify;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// PS512 signatures per second on `threads` threads for `secs` seconds.
fn signing_bound(threads: usize, secs: f64) -> f64 {
    let key = Arc::new(crypto::RsaSigningKey::generate("bench").unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (key, stop, count) = (key.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                let claims =
                    br#"{"iss":"https://x/submission-api","sub":"submission:0","events":{}}"#;
                while !stop.load(Ordering::Relaxed) {
                    key.sign_compact(Some("secevent+jwt"), claims).unwrap();
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Appends whole lines to a log file, one `write` each (crash-test mode).
struct LineLog(Mutex<std::fs::File>);

impl LineLog {
    fn open(path: &str) -> LineLog {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
        LineLog(Mutex::new(f))
    }

    fn line(&self, text: &str) {
        let mut f = self.0.lock().unwrap();
        f.write_all(format!("{text}\n").as_bytes())
            .and_then(|()| f.flush())
            .expect("writing the acknowledgement log");
    }
}

/// Crash-test mode: where acknowledgements go, and what went wrong.
struct Crash {
    acks: LineLog,
    creates: Option<LineLog>,
    transport: AtomicU64,
    server: AtomicU64,
    unauthorized: AtomicU64,
    unexpected: AtomicU64,
    created: AtomicU64,
    acked: AtomicU64,
    stop: AtomicBool,
}

/// Why a flow failed.
enum FlowError {
    /// No answer: connection refused or reset, the body cut off (the server went away).
    Transport,
    /// An answer with an unexpected status: the step, the status and the body's start.
    Status(&'static str, u16, String),
}

async fn expect(
    r: Result<reqwest::Response, reqwest::Error>,
    step: &'static str,
    want: u16,
) -> Result<reqwest::Response, FlowError> {
    let r = r.map_err(|_| FlowError::Transport)?;
    let code = r.status().as_u16();
    if code == want {
        return Ok(r);
    }
    let body = r.text().await.unwrap_or_default();
    Err(FlowError::Status(
        step,
        code,
        body.chars().take(300).collect(),
    ))
}

/// What every sender shares.
struct Shared {
    http: reqwest::Client,
    v1: String,
    token_url: String,
    client_id: String,
    client_secret: String,
    token: String,
    dest: String,
    service: String,
    attachment: String,
    metadata: String,
    data: String,
}

/// One full sender flow: create, upload the announced attachment, submit.
async fn flow(s: &Shared, token: &str, crash: Option<&Crash>) -> Result<(), FlowError> {
    let Shared {
        http,
        v1,
        dest,
        service,
        attachment,
        metadata,
        data,
        ..
    } = s;
    let aid = uuid::Uuid::new_v4().to_string();
    let r = http.post(format!("{v1}/submissions")).bearer_auth(token)
        .json(&json!({"destinationId": dest, "announcedAttachments": [aid], "serviceType": {"name": "", "identifier": service}}))
        .send().await;
    let r = expect(r, "create", 201).await?;
    let c: Value = r.json().await.map_err(|_| FlowError::Transport)?;
    let (Some(sid), Some(case)) = (c["submissionId"].as_str(), c["caseId"].as_str()) else {
        return Err(FlowError::Status("create", 201, c.to_string()));
    };
    if let Some(crash) = crash {
        crash.created.fetch_add(1, Ordering::Relaxed);
        if let Some(log) = &crash.creates {
            log.line(&format!("{sid} {case}"));
        }
    }
    let r = http
        .put(format!("{v1}/submissions/{sid}/attachments/{aid}"))
        .bearer_auth(token)
        .header("content-type", "application/jose")
        .body(attachment.clone())
        .send()
        .await;
    expect(r, "attachment", 204).await?;
    let r = http
        .put(format!("{v1}/submissions/{sid}"))
        .bearer_auth(token)
        .json(&json!({"encryptedMetadata": metadata, "encryptedData": data}))
        .send()
        .await;
    let r = expect(r, "submit", 202).await?;
    // The status line is the acknowledgement: the service answers only after the commit.
    if let Some(crash) = crash {
        crash.acks.line(&format!("{sid} {case}"));
        crash.acked.fetch_add(1, Ordering::Relaxed);
    }
    r.bytes().await.map_err(|_| FlowError::Transport)?;
    Ok(())
}

async fn fetch_token(s: &Shared) -> Option<String> {
    let tok: Value = s
        .http
        .post(&s.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", s.client_id.as_str()),
            ("client_secret", s.client_secret.as_str()),
        ])
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?
        .json()
        .await
        .ok()?;
    Some(tok["access_token"].as_str()?.to_owned())
}

/// The setup requests: a token and the destination's encryption key.
async fn setup(
    http: &reqwest::Client,
    token_url: &str,
    v1: &str,
    fc: &Value,
) -> Result<(String, String, Value), String> {
    let e = |e: reqwest::Error| e.to_string();
    let tok: Value = http
        .post(token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", fc["sender"]["client_id"].as_str().unwrap()),
            (
                "client_secret",
                fc["sender"]["client_secret"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(e)?
        .json()
        .await
        .map_err(e)?;
    let token = tok["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned();
    let dest = fc["destination_id"].as_str().unwrap();
    let d: Value = http
        .get(format!("{v1}/destinations/{dest}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(e)?
        .json()
        .await
        .map_err(e)?;
    let kid = d["encryptionKid"]
        .as_str()
        .ok_or("no encryptionKid")?
        .to_owned();
    let jwk: Value = http
        .get(format!("{v1}/destinations/{dest}/keys/{kid}"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(e)?
        .json()
        .await
        .map_err(e)?;
    Ok((token, kid, jwk))
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("verify") {
        std::process::exit(verify::main(&args[2..]).await);
    }
    if args.get(1).map(String::as_str) == Some("epoststelle") {
        std::process::exit(epoststelle::main(&args[2..]).await);
    }
    if args.len() < 4 {
        eprintln!("usage: bench-zustelldienst DEMO_JSON CONCURRENCY SECONDS [ATTACHMENT_BYTES]");
        eprintln!("       bench-zustelldienst verify DEMO_JSON ACK_LOG [CREATE_LOG]");
        eprintln!("       bench-zustelldienst epoststelle preload|measure|bound …");
        std::process::exit(2);
    }
    let demo: Value = serde_json::from_slice(&std::fs::read(&args[1]).unwrap()).unwrap();
    let concurrency: usize = args[2].parse().unwrap();
    let seconds: f64 = args[3].parse().unwrap();
    let att_bytes: usize = args.get(4).map_or(10 * 1024, |a| a.parse().unwrap());
    let crash = std::env::var("LOADGEN_ACK_LOG").ok().map(|path| {
        Arc::new(Crash {
            acks: LineLog::open(&path),
            creates: std::env::var("LOADGEN_CREATE_LOG")
                .ok()
                .map(|p| LineLog::open(&p)),
            transport: AtomicU64::new(0),
            server: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            created: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        })
    });
    let fc = &demo["fit_connect"];
    // The demo's URLs name `localhost`; connect to the IPv4 loopback directly.
    let v1 = fc["submission_api_v1"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let base = demo["base_url"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let token_url = fc["token_url"]
        .as_str()
        .unwrap()
        .replace("localhost", "127.0.0.1");
    let mut builder = reqwest::Client::builder().pool_max_idle_per_host(concurrency);
    if crash.is_some() {
        // A request must not hang on a server that was killed mid-request.
        builder = builder
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5));
    }
    let http = builder.build().unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let (token, kid, jwk) = loop {
        match setup(&http, &token_url, &v1, fc).await {
            Ok(v) => break v,
            Err(e) if crash.is_some() && Instant::now() < deadline => {
                eprintln!("setup failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("setup failed: {e}"),
        }
    };
    let key = crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap();
    let attachment = crypto::jwe::encrypt(
        &key,
        &vec![b'x'; att_bytes],
        Some("application/pdf"),
        Some(&kid),
        false,
    )
    .unwrap();
    let metadata = crypto::jwe::encrypt(
        &key,
        br#"{"contentStructure":{"attachments":[]}}"#,
        Some("application/json"),
        Some(&kid),
        false,
    )
    .unwrap();
    let data = crypto::jwe::encrypt(
        &key,
        br#"{"name":"Erika Mustermann"}"#,
        Some("application/json"),
        Some(&kid),
        false,
    )
    .unwrap();
    let shared = Arc::new(Shared {
        http,
        v1,
        token_url,
        client_id: fc["sender"]["client_id"].as_str().unwrap().to_owned(),
        client_secret: fc["sender"]["client_secret"].as_str().unwrap().to_owned(),
        token,
        dest: fc["destination_id"].as_str().unwrap().to_owned(),
        service: fc["service_identifier"].as_str().unwrap().to_owned(),
        attachment,
        metadata,
        data,
    });
    if let Some(c) = &crash {
        let c = c.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).unwrap();
            let mut int = signal(SignalKind::interrupt()).unwrap();
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            c.stop.store(true, Ordering::Relaxed);
        });
    }

    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let s = shared.clone();
        let crash = crash.clone();
        tasks.push(tokio::spawn(async move {
            let mut token = s.token.clone();
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline
                && !crash
                    .as_ref()
                    .is_some_and(|c| c.stop.load(Ordering::Relaxed))
            {
                let t0 = Instant::now();
                let outcome = flow(&s, &token, crash.as_deref()).await;
                match outcome {
                    Ok(()) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                    Err(e) => {
                        errors += 1;
                        let Some(c) = &crash else { continue };
                        match e {
                            FlowError::Transport => {
                                c.transport.fetch_add(1, Ordering::Relaxed);
                            }
                            FlowError::Status(_, code, _) if code >= 500 => {
                                c.server.fetch_add(1, Ordering::Relaxed);
                            }
                            FlowError::Status(_, 401, _) => {
                                c.unauthorized.fetch_add(1, Ordering::Relaxed);
                                if let Some(t) = fetch_token(&s).await {
                                    token = t;
                                }
                            }
                            FlowError::Status(step, code, body) => {
                                let n = c.unexpected.fetch_add(1, Ordering::Relaxed);
                                if n < 20 {
                                    eprintln!("unexpected answer to {step}: HTTP {code} {body}");
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let load = started.elapsed().as_secs_f64();
    if let Some(c) = &crash {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        println!(
            "CRASHLOAD seconds={load:.1} acked={} created={} failed_flows={errors} transport={} http5xx={} unauthorized={} unexpected4xx={}",
            n(&c.acked),
            n(&c.created),
            n(&c.transport),
            n(&c.server),
            n(&c.unauthorized),
            n(&c.unexpected),
        );
        return;
    }
    lat.sort_by(f64::total_cmp);
    let n = lat.len() as f64;
    println!(
        "load: {} submissions in {load:.1} s = {:.0}/s acknowledged, flow p50 {:.1} ms p99 {:.1} ms, errors {errors}",
        lat.len(),
        n / load,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
    // Catch-up: until every SET is signed.
    let admin = demo["admin_token"].as_str().unwrap();
    let http = &shared.http;
    loop {
        let st: Value = http
            .get(format!("{base}/api/admin/v1/zustelldienst/status"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if st["unsignedEvents"].as_i64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed().as_secs_f64();
    println!(
        "signed: all SETs signed {:.1} s after the load ended; sustained {:.0} submissions/s (load + catch-up)",
        total - load,
        n / total
    );
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let bound = tokio::task::spawn_blocking(move || signing_bound(threads, 5.0))
        .await
        .unwrap();
    println!(
        "bound: {bound:.0} PS512 signatures/s on {threads} threads = {:.0} submissions/s (2 SETs each); sustained = {:.0} % of the bound",
        bound / 2.0,
        100.0 * (n / total) / (bound / 2.0)
    );
}
