//! `bench-zustelldienst epoststelle …`: the ePoststelle pipeline benchmark
//! (`bench/epoststelle.sh`, issue 5). Three steps, run by the script around a server
//! restart:
//!
//! * `preload DEMO_JSON N CONCURRENCY IDS_FILE [ATTACHMENT_BYTES]`: N submissions to the
//!   demo's ePoststelle destination (`fit_connect.epoststelle_destination_id`), each with
//!   metadata, data (valid against the demo's registered Fachdaten schema) and one
//!   attachment, every part a JWE to the destination's current encryption key, sent as a
//!   FIT-Connect sender does (create, attachment, submit) by CONCURRENCY senders. The
//!   server runs without the worker (`RATHAUS_POSTSTELLE_WORKER=false`), so the
//!   submissions wait. Waits until every SET is signed, writes `<submissionId> <caseId>`
//!   lines to IDS_FILE and prints `RESULT preload …` (including the decided count before).
//! * `measure DEMO_JSON IDS_FILE DECIDED_BEFORE TIMEOUT_S`: against the restarted server
//!   (worker on, clamd configured): polls the admin status until every submission is
//!   decided and every SET signed, then reads each submission's receipt as its sender
//!   (`decidedAt`, the decision) and prints `RESULT measure …`: the span from the first to
//!   the last decision and the rate over it.
//! * `bound SECONDS THREADS ATTACHMENT_BYTES`: the RSA-4096 private-key operations one
//!   submission costs, at full use of THREADS threads: JWE decryptions (one RSA-OAEP-256
//!   unwrap each) of parts the size the preload sends, and PS512 signatures of SET-sized
//!   claims; prints `RESULT bound …` with the rates per operation.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn loopback(v: &Value) -> String {
    // The demo's URLs name `localhost`; connect to the IPv4 loopback directly.
    v.as_str().unwrap().replace("localhost", "127.0.0.1")
}

async fn get_json(r: reqwest::RequestBuilder) -> Result<Value, String> {
    let r = r.send().await.map_err(|e| e.to_string())?;
    let code = r.status();
    let body = r.text().await.map_err(|e| e.to_string())?;
    if !code.is_success() {
        return Err(format!(
            "HTTP {code}: {}",
            body.chars().take(300).collect::<String>()
        ));
    }
    serde_json::from_str(&body).map_err(|e| e.to_string())
}

async fn token(http: &reqwest::Client, demo: &Value) -> String {
    let fc = &demo["fit_connect"];
    let tok = get_json(http.post(loopback(&fc["token_url"])).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", fc["sender"]["client_id"].as_str().unwrap()),
        (
            "client_secret",
            fc["sender"]["client_secret"].as_str().unwrap(),
        ),
    ]))
    .await
    .unwrap_or_else(|e| panic!("token: {e}"));
    tok["access_token"].as_str().unwrap().to_owned()
}

async fn status(http: &reqwest::Client, demo: &Value) -> Value {
    let base = loopback(&demo["base_url"]);
    get_json(
        http.get(format!("{base}/api/admin/v1/zustelldienst/status"))
            .bearer_auth(demo["admin_token"].as_str().unwrap()),
    )
    .await
    .unwrap_or_else(|e| panic!("status: {e}"))
}

fn count(st: &Value, status: &str) -> i64 {
    st["submissions"][status].as_i64().unwrap_or(0)
}

fn decided(st: &Value) -> i64 {
    count(st, "accepted") + count(st, "rejected")
}

/// Fachdaten valid against the demo's Wohnsitz schema (`data/fachdaten-wohnsitz-…`).
fn fachdaten(i: usize) -> Vec<u8> {
    json!({
        "F00000001": "Mustermann",
        "F00000002": format!("Erika {i}"),
        "F00000003": "1984-02-29",
        "G00000010": {"F00000011": "Rodenberger Allee", "F00000012": "13",
            "F00000013": "31542", "F00000014": "Bad Nenndorf"},
        "F00000020": "2026-12-01",
        "F00000021": "Hauptwohnung"
    })
    .to_string()
    .into_bytes()
}

/// A PDF-like attachment of `len` bytes (clean for clamd, unique per submission).
fn attachment(len: usize, i: usize) -> Vec<u8> {
    let mut b = format!("%PDF-1.7\n% Meldeschein {i}\n").into_bytes();
    let filler = b"1 0 obj << /Type /Catalog >> endobj 0123456789 abcdefghijklmnopqrstuvwxyz\n";
    while b.len() + 6 < len {
        let n = filler.len().min(len - 6 - b.len());
        b.extend_from_slice(&filler[..n]);
    }
    b.extend_from_slice(b"%%EOF\n");
    b
}

struct Sender {
    http: reqwest::Client,
    v1: String,
    token: String,
    dest: String,
    service: String,
    schema: String,
    key: crypto::RsaEncryptionKey,
    kid: String,
    att_bytes: usize,
}

/// One sender flow; returns `<submissionId> <caseId>`.
async fn submit(s: &Sender, i: usize) -> Result<String, String> {
    let aid = uuid::Uuid::new_v4().to_string();
    let data = fachdaten(i);
    let att = attachment(s.att_bytes, i);
    let enc = |b: &[u8], cty: &str| {
        crypto::jwe::encrypt(&s.key, b, Some(cty), Some(&s.kid), false).map_err(|e| e.to_string())
    };
    let c = get_json(
        s.http
            .post(format!("{}/submissions", s.v1))
            .bearer_auth(&s.token)
            .json(
                &json!({"destinationId": s.dest, "announcedAttachments": [aid],
                "serviceType": {"name": "Wohnsitz anmelden", "identifier": s.service}}),
            ),
    )
    .await
    .map_err(|e| format!("create: {e}"))?;
    let sid = c["submissionId"]
        .as_str()
        .ok_or("create: no id")?
        .to_owned();
    let case = c["caseId"].as_str().ok_or("create: no case")?.to_owned();
    let r = s
        .http
        .put(format!("{}/submissions/{sid}/attachments/{aid}", s.v1))
        .bearer_auth(&s.token)
        .header("content-type", "application/jose")
        .body(enc(&att, "application/pdf")?)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 204 {
        return Err(format!(
            "attachment: HTTP {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    let metadata = json!({
        "contentStructure": {
            "data": {"hash": {"type": "sha512", "content": poststelle::sha512_hex(&data)},
                "submissionSchema": {"schemaUri": s.schema, "mimeType": "application/json"}},
            "attachments": [{"attachmentId": aid, "purpose": "attachment",
                "mimeType": "application/pdf", "filename": format!("Meldeschein-{i}.pdf"),
                "hash": {"type": "sha512", "content": poststelle::sha512_hex(&att)}}],
        },
        "publicServiceType": {"identifier": s.service},
    });
    let r = s
        .http
        .put(format!("{}/submissions/{sid}", s.v1))
        .bearer_auth(&s.token)
        .json(&json!({
            "encryptedMetadata": enc(metadata.to_string().as_bytes(), "application/json")?,
            "encryptedData": enc(&data, "application/json")?,
        }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status().as_u16() != 202 {
        return Err(format!(
            "submit: HTTP {} {}",
            r.status(),
            r.text().await.unwrap_or_default()
        ));
    }
    Ok(format!("{sid} {case}"))
}

async fn preload(args: &[String]) -> i32 {
    let [demo, n, conc, ids_file, rest @ ..] = args else {
        eprintln!(
            "usage: bench-zustelldienst epoststelle preload DEMO_JSON N CONCURRENCY IDS_FILE [ATTACHMENT_BYTES]"
        );
        return 2;
    };
    let demo: Value = serde_json::from_slice(&std::fs::read(demo).unwrap()).unwrap();
    let n: usize = n.parse().unwrap();
    let conc: usize = conc.parse().unwrap();
    let att_bytes: usize = rest.first().map_or(10 * 1024, |a| a.parse().unwrap());
    let fc = &demo["fit_connect"];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conc)
        .build()
        .unwrap();
    let v1 = loopback(&fc["submission_api_v1"]);
    let dest = fc["epoststelle_destination_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = get_json(http.get(format!("{v1}/destinations/{dest}")))
        .await
        .unwrap();
    let kid = d["encryptionKid"].as_str().unwrap().to_owned();
    let jwk = get_json(http.get(format!("{v1}/destinations/{dest}/keys/{kid}")))
        .await
        .unwrap();
    let before = status(&http, &demo).await;
    let sender = Arc::new(Sender {
        token: token(&http, &demo).await,
        http: http.clone(),
        v1,
        dest,
        service: fc["service_identifier"].as_str().unwrap().to_owned(),
        schema: fc["data_schema_uri"].as_str().unwrap().to_owned(),
        key: crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap(),
        kid,
        att_bytes,
    });
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (s, next, errors) = (sender.clone(), next.clone(), errors.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    match submit(&s, i).await {
                        Ok(line) => done.push(line),
                        Err(e) => {
                            if errors.fetch_add(1, Ordering::Relaxed) < 10 {
                                eprintln!("preload: {e}");
                            }
                        }
                    }
                }
                done
            })
        })
        .collect();
    let mut lines = Vec::new();
    for t in tasks {
        lines.extend(t.await.unwrap());
    }
    let load = started.elapsed().as_secs_f64();
    std::fs::write(ids_file, lines.join("\n") + "\n").unwrap();
    // The intake's SETs (create, submit) are signed before the measured run starts.
    loop {
        let st = status(&http, &demo).await;
        if st["unsignedEvents"].as_i64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = status(&http, &demo).await;
    println!(
        "RESULT preload submitted={} errors={} seconds={load:.1} per_s={:.0} signed_after_s={:.1} decided_before={} waiting={}",
        lines.len(),
        errors.load(Ordering::Relaxed),
        lines.len() as f64 / load,
        started.elapsed().as_secs_f64() - load,
        decided(&before),
        count(&after, "submitted") + count(&after, "forwarded"),
    );
    i32::from(errors.load(Ordering::Relaxed) > 0 || decided(&after) != decided(&before))
}

/// Seconds since the epoch of an RFC 3339 UTC time (`…Z`, fractional seconds allowed).
fn epoch_seconds(t: &str) -> Option<f64> {
    let t = t.strip_suffix('Z')?;
    let (date, time) = t.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = time.splitn(3, ':');
    let (h, mi) = (
        c.next()?.parse::<f64>().ok()?,
        c.next()?.parse::<f64>().ok()?,
    );
    let s: f64 = c.next()?.parse().ok()?;
    // Days from civil (proleptic Gregorian), after H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + s)
}

async fn measure(args: &[String]) -> i32 {
    let [demo, ids_file, decided_before, timeout] = args else {
        eprintln!(
            "usage: bench-zustelldienst epoststelle measure DEMO_JSON IDS_FILE DECIDED_BEFORE TIMEOUT_S"
        );
        return 2;
    };
    let demo: Value = serde_json::from_slice(&std::fs::read(demo).unwrap()).unwrap();
    let ids: Vec<String> = std::fs::read_to_string(ids_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let target = decided_before.parse::<i64>().unwrap() + ids.len() as i64;
    let timeout = Duration::from_secs(timeout.parse().unwrap());
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut polls = 0u64;
    loop {
        let st = status(&http, &demo).await;
        polls += 1;
        if decided(&st) >= target {
            break;
        }
        if started.elapsed() > timeout {
            eprintln!("measure: timeout; status {st}");
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_decided = started.elapsed().as_secs_f64();
    loop {
        let st = status(&http, &demo).await;
        if st["unsignedEvents"].as_i64() == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_signed = started.elapsed().as_secs_f64();
    // Each receipt as its sender reads it: the decision and when it was taken.
    let fc = &demo["fit_connect"];
    let v1 = loopback(&fc["submission_api_v1"]);
    let tok = token(&http, &demo).await;
    let ids = Arc::new(ids);
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (http, v1, tok, ids, next) = (
                http.clone(),
                v1.clone(),
                tok.clone(),
                ids.clone(),
                next.clone(),
            );
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(i) else { break };
                    let r = get_json(
                        http.get(format!("{v1}/submissions/{id}/receipt"))
                            .bearer_auth(&tok),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("receipt of {id}: {e}"));
                    let c = &r["receipt"];
                    out.push((
                        epoch_seconds(c["decidedAt"].as_str().unwrap_or_default())
                            .unwrap_or_else(|| panic!("decidedAt of {id}: {c}")),
                        c["decision"]["result"].as_str().unwrap_or("?").to_owned(),
                    ));
                }
                out
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for t in tasks {
        decisions.extend(t.await.unwrap());
    }
    let accepted = decisions.iter().filter(|(_, d)| d == "accepted").count();
    let mut times: Vec<f64> = decisions.iter().map(|(t, _)| *t).collect();
    times.sort_by(f64::total_cmp);
    let span = times.last().unwrap() - times.first().unwrap();
    let n = times.len();
    // n decisions span n - 1 intervals.
    let rate = if span > 0.0 {
        (n - 1) as f64 / span
    } else {
        0.0
    };
    // The steady middle: the rate between the 10th and the 90th percentile decision.
    let (a, b) = (n / 10, n - 1 - n / 10);
    let mid = if b > a && times[b] > times[a] {
        (b - a) as f64 / (times[b] - times[a])
    } else {
        0.0
    };
    println!(
        "RESULT measure decided={n} accepted={accepted} rejected={} span_s={span:.2} per_s={rate:.1} p10_p90_per_s={mid:.1} all_decided_s={all_decided:.1} all_signed_s={all_signed:.1} polls={polls}",
        n - accepted
    );
    i32::from(accepted != n)
}

/// Runs `op` on `threads` threads for `secs` seconds; operations per second.
fn rate<F: Fn() + Send + Sync + 'static>(threads: usize, secs: f64, op: F) -> f64 {
    let op = Arc::new(op);
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (op, stop, count) = (op.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    op();
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

fn bound(args: &[String]) -> i32 {
    let [secs, threads, att_bytes] = args else {
        eprintln!("usage: bench-zustelldienst epoststelle bound SECONDS THREADS ATTACHMENT_BYTES");
        return 2;
    };
    let secs: f64 = secs.parse().unwrap();
    let threads: usize = threads.parse().unwrap();
    let att_bytes: usize = att_bytes.parse().unwrap();
    let dec = Arc::new(crypto::RsaDecryptionKey::generate("bench").unwrap());
    let sig = Arc::new(crypto::RsaSigningKey::generate("bench").unwrap());
    let aid = uuid::Uuid::new_v4().to_string();
    let data = fachdaten(0);
    let att = attachment(att_bytes, 0);
    let metadata = json!({"contentStructure": {
        "data": {"hash": {"type": "sha512", "content": poststelle::sha512_hex(&data)},
            "submissionSchema": {"schemaUri": "https://schema.rathaus.example/fachdaten/99115005104000/1.0.json", "mimeType": "application/json"}},
        "attachments": [{"attachmentId": aid, "purpose": "attachment", "mimeType": "application/pdf",
            "filename": "Meldeschein-0.pdf", "hash": {"type": "sha512", "content": poststelle::sha512_hex(&att)}}]},
        "publicServiceType": {"identifier": "urn:de:fim:leika:leistung:99115005104000"}})
    .to_string();
    let enc = |b: &[u8], cty: &str| {
        crypto::jwe::encrypt(dec.encryption_key(), b, Some(cty), Some(dec.kid()), false).unwrap()
    };
    let parts = Arc::new(vec![
        enc(metadata.as_bytes(), "application/json"),
        enc(&data, "application/json"),
        enc(&att, "application/pdf"),
    ]);
    // One JWE decryption = parse + one RSA-OAEP-256 unwrap + AES-GCM of the part; the three
    // parts in turn, so the rate is per part of the mix one submission brings.
    let turn = Arc::new(AtomicUsize::new(0));
    let decrypt = {
        let (dec, parts) = (dec.clone(), parts.clone());
        move || {
            let i = turn.fetch_add(1, Ordering::Relaxed) % parts.len();
            let p = crypto::JweCompact::parse(&parts[i]).unwrap();
            let d = crypto::jwe::decrypt(&dec, &p, usize::MAX).unwrap();
            std::hint::black_box(d);
        }
    };
    let claims = json!({"iss": "https://rathaus.example/submission-api", "iat": 1_796_000_000,
        "jti": aid, "sub": format!("submission:{aid}"), "txn": format!("case:{aid}"),
        "events": {"https://schema.fitko.de/fit-connect/events/accept-submission": {
            "authenticationTags": {"metadata": "x".repeat(22), "data": "y".repeat(22),
                "attachments": {aid.clone(): "z".repeat(22)}}}}})
    .to_string();
    let sign = {
        let sig = sig.clone();
        move || {
            std::hint::black_box(sig.sign_compact(Some("secevent+jwt"), claims.as_bytes()))
                .unwrap();
        }
    };
    // Warm-up, then each operation alone on all threads.
    rate(threads, 0.5, sign.clone());
    let sign_1 = rate(1, secs, sign.clone());
    let sign_n = rate(threads, secs, sign);
    let dec_1 = rate(1, secs, decrypt.clone());
    let dec_n = rate(threads, secs, decrypt);
    println!(
        "RESULT bound threads={threads} seconds={secs} ps512_per_s_1={sign_1:.1} ps512_per_s={sign_n:.1} jwe_decrypt_per_s_1={dec_1:.1} jwe_decrypt_per_s={dec_n:.1} parts_bytes={},{},{}",
        parts[0].len(),
        parts[1].len(),
        parts[2].len()
    );
    0
}

pub async fn main(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("preload") => preload(&args[1..]).await,
        Some("measure") => measure(&args[1..]).await,
        Some("bound") => {
            let rest = args[1..].to_vec();
            tokio::task::spawn_blocking(move || bound(&rest))
                .await
                .unwrap()
        }
        _ => {
            eprintln!("usage: bench-zustelldienst epoststelle preload|measure|bound …");
            2
        }
    }
}
