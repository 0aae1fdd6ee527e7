//! `bench-zustelldienst DEMO_JSON CONCURRENCY SECONDS [ATTACHMENT_BYTES]`
//!
//! Many concurrent senders run the full FIT-Connect flow against the demo's external
//! destination (token fetched once per sender and reused): POST /submissions, PUT one
//! attachment, PUT /submissions/{id}. Prints one line of figures per phase:
//! acknowledged submissions/s, flow latency p50/p99, errors; then waits until the service
//! has signed every event (admin status `unsignedEvents` = 0) and prints the sustained
//! rate over load + catch-up. Also measures the signing bound in the same run: PS512
//! signatures/s with an RSA-4096 key on all cores, halved (two SETs per submission).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: bench-zustelldienst DEMO_JSON CONCURRENCY SECONDS [ATTACHMENT_BYTES]");
        std::process::exit(2);
    }
    let demo: Value = serde_json::from_slice(&std::fs::read(&args[1]).unwrap()).unwrap();
    let concurrency: usize = args[2].parse().unwrap();
    let seconds: f64 = args[3].parse().unwrap();
    let att_bytes: usize = args.get(4).map_or(10 * 1024, |a| a.parse().unwrap());
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
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let tok: Value = http
        .post(&token_url)
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
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();
    let dest = fc["destination_id"].as_str().unwrap().to_owned();
    let service = fc["service_identifier"].as_str().unwrap().to_owned();
    let d: Value = http
        .get(format!("{v1}/destinations/{dest}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = d["encryptionKid"].as_str().unwrap();
    let jwk: Value = http
        .get(format!("{v1}/destinations/{dest}/keys/{kid}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = crypto::RsaEncryptionKey::from_jwk(&jwk).unwrap();
    let attachment = crypto::jwe::encrypt(
        &key,
        &vec![b'x'; att_bytes],
        Some("application/pdf"),
        Some(kid),
        false,
    )
    .unwrap();
    let metadata = crypto::jwe::encrypt(
        &key,
        br#"{"contentStructure":{"attachments":[]}}"#,
        Some("application/json"),
        Some(kid),
        false,
    )
    .unwrap();
    let data = crypto::jwe::encrypt(
        &key,
        br#"{"name":"Erika Mustermann"}"#,
        Some("application/json"),
        Some(kid),
        false,
    )
    .unwrap();
    let shared = Arc::new((http, v1, token, dest, service, attachment, metadata, data));

    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let s = shared.clone();
        tasks.push(tokio::spawn(async move {
            let (http, v1, token, dest, service, attachment, metadata, data) = &*s;
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let aid = uuid::Uuid::new_v4().to_string();
                let ok = async {
                    let r = http.post(format!("{v1}/submissions")).bearer_auth(token)
                        .json(&json!({"destinationId": dest, "announcedAttachments": [aid], "serviceType": {"name": "", "identifier": service}}))
                        .send().await.ok()?;
                    if r.status().as_u16() != 201 { return None; }
                    let c: Value = r.json().await.ok()?;
                    let sid = c["submissionId"].as_str()?.to_owned();
                    let r = http.put(format!("{v1}/submissions/{sid}/attachments/{aid}")).bearer_auth(token)
                        .header("content-type", "application/jose").body(attachment.clone()).send().await.ok()?;
                    if r.status().as_u16() != 204 { return None; }
                    let r = http.put(format!("{v1}/submissions/{sid}")).bearer_auth(token)
                        .json(&json!({"encryptedMetadata": metadata, "encryptedData": data})).send().await.ok()?;
                    if r.status().as_u16() != 202 { return None; }
                    r.bytes().await.ok()?;
                    Some(())
                }
                .await;
                match ok {
                    Some(()) => lat.push(t0.elapsed().as_secs_f64() * 1000.0),
                    None => errors += 1,
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
    let (http, ..) = &*shared;
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
