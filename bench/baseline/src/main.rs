//! Bare axum peer for the routing benchmark (`bench/routing.sh`).
//!
//! Answers `GET /routing-api/v1/routes` with one constant, precomputed JSON body and
//! `GET /readyz` with 200, nothing else: no query parsing, no lookup, no middleware.
//! It is the "bare handler" figure the Rathaus Routing API is compared against.
//!
//! Usage: `bench-baseline [LISTEN_ADDR] [BODY_FILE]`
//! - `LISTEN_ADDR` defaults to `127.0.0.1:8090`.
//! - `BODY_FILE` is served verbatim (e.g. one real Rathaus answer captured with curl);
//!   without it a built-in ~2.5 KB sample shaped like a FIT-Connect `route-result` is used.
//!
//! Runtime: tokio multi-thread with the default worker count (one per core).

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

const DEFAULT_ADDR: &str = "127.0.0.1:8090";
const SIGNATURE_BYTES: usize = 512; // RSA-4096 / PS512 signature size

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let body = match args.next() {
        Some(path) => Bytes::from(
            std::fs::read(&path).map_err(|e| format!("cannot read body file {path}: {e}"))?,
        ),
        None => Bytes::from(sample_route_result()),
    };

    let routes_body = body.clone();
    let app = Router::new()
        .route(
            "/routing-api/v1/routes",
            get(move || {
                let b = routes_body.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        b,
                    )
                        .into_response()
                }
            }),
        )
        .route("/readyz", get(|| async { "ok" }));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "bench-baseline listening on {} (body {} bytes)",
        listener.local_addr()?,
        body.len()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A FIT-Connect `route-result` with one route, about 2.5 KB, built once at start.
/// All strings are plain ASCII/UTF-8 without characters that need JSON escaping.
fn sample_route_result() -> String {
    let destination_id = "7a2668ad-3081-407c-9358-7ce4b6144b02";
    let kid = "e4f0c7a1-5b2d-4c1e-9a3f-2d8b6c0e1f47";
    let leistung = "urn:de:fim:leika:leistung:99115005104000";
    let gebiet = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:031590016016";

    let jws_header = format!(r#"{{"alg":"PS512","kid":"{kid}","typ":"JWT"}}"#);
    let jws_payload = format!(
        concat!(
            r#"{{"iss":"https://rathaus.example.invalid","iat":1735689600,"#,
            r#""sub":"{dest}","destinationId":"{dest}","#,
            r#""submissionHost":"rathaus.example.invalid","#,
            r#""services":[{{"gebietIDs":["{gebiet}"],"leistungIDs":["{leistung}"]}}],"#,
            r#""jti":"3f1d2c4b-8e7a-4b6c-9d0e-1a2b3c4d5e6f"}}"#
        ),
        dest = destination_id,
        gebiet = gebiet,
        leistung = leistung,
    );
    let signature = pseudo_random_bytes(SIGNATURE_BYTES, 0x5EED_2025_0BAD_CAFE);
    let jws = format!(
        "{}.{}.{}",
        base64url(jws_header.as_bytes()),
        base64url(jws_payload.as_bytes()),
        base64url(&signature)
    );

    format!(
        concat!(
            r#"{{"count":1,"offset":0,"totalCount":1,"routes":[{{"#,
            r#""destinationId":"{dest}","#,
            r#""destinationSignature":"{jws}","#,
            r#""destinationName":"Stadt Göttingen, Fachdienst Bürgerangelegenheiten – Bürgerbüro (Meldewesen, Pass- und Ausweiswesen)","#,
            r#""destinationShortName":"Bürgerbüro Göttingen","#,
            r#""destinationLogo":{{"url":"https://www.goettingen.de/logo.svg"}},"#,
            r#""address":{{"street":"Hiroshimaplatz","houseNumber":"1-4","zip":"37083","city":"Göttingen"}},"#,
            r#""contactPersons":["#,
            r#"{{"name":"Bürgerbüro Göttingen – Servicetelefon","tel":"+49 551 400-0","email":"buergerbuero@goettingen.example.invalid"}},"#,
            r#"{{"name":"Fachdienst Bürgerangelegenheiten, Sachgebiet Meldewesen","tel":"+49 551 400-2425","email":"meldewesen@goettingen.example.invalid"}}"#,
            r#"],"#,
            r#""privacyPolicyUrl":"https://www.goettingen.de/datenschutz","#,
            r#""imprintUrl":"https://www.goettingen.de/impressum","#,
            r#""accessibilityUrl":"https://www.goettingen.de/barrierefreiheitserklaerung","#,
            r#""contactFormUrl":"https://www.goettingen.de/kontakt/buergerbuero","#,
            r#""processingDuration":{{"minDuration":1,"maxDuration":3,"unit":"workday"}},"#,
            r#""origin":"Rathaus"}}]}}"#
        ),
        dest = destination_id,
        jws = jws,
    )
}

/// Deterministic filler bytes (xorshift64*), so every run serves the same body.
fn pseudo_random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// base64url without padding (RFC 7515 §2), enough for a JWS-looking string.
fn base64url(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}
