//! `bench-zustelldienst verify DEMO_JSON ACK_LOG [CREATE_LOG]`: checks that every
//! acknowledged submit in ACK_LOG (lines `<submissionId> <caseId>`, as the crash-test mode
//! writes them) survived, as the demo's subscriber sees it:
//!
//! 1. the pickup list (`GET /submissions?destinationId=…`, every page) names it exactly once;
//! 2. its case's event log has exactly one `submit-submission` SET for it (and its
//!    `create-submission`), each signed by a key of the service's JWKS;
//! 3. `GET /submissions/{id}` answers 200 with the submission (this records
//!    `forward-submission`, so the pickup list is read first), and each of its attachments
//!    can be downloaded.
//!
//! For CREATE_LOG (acknowledged `POST /submissions`), submissions whose submit was not
//! acknowledged must still have their `create-submission` event in the sender's view of
//! the case. Prints one `VERIFY key=value …` line and the first failures; the exit status
//! is 1 if anything acknowledged is missing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

const EVENT_BASE: &str = "https://schema.fitko.de/fit-connect/events/";

struct Ctx {
    http: reqwest::Client,
    v1: String,
    subscriber: String,
    sender: String,
    jwks: Vec<Value>,
}

fn read_pairs(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some(s), Some(c), None) => Ok((s.to_owned(), c.to_owned())),
                _ => Err(format!("{path}:{}: malformed line {l:?}", i + 1)),
            }
        })
        .collect()
}

async fn token(http: &reqwest::Client, url: &str, who: &Value) -> Result<String, String> {
    let r: Value = http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", who["client_id"].as_str().unwrap_or_default()),
            (
                "client_secret",
                who["client_secret"].as_str().unwrap_or_default(),
            ),
        ])
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("token: {e}"))?
        .json()
        .await
        .map_err(|e| format!("token: {e}"))?;
    r["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("token: no access_token in {r}"))
}

/// GET `url` with `token`: the status and the body (JSON if it parses, else a string).
async fn get(ctx: &Ctx, url: &str, token: &str) -> Result<(u16, Value), String> {
    let mut last = String::new();
    // A few tries against transient transport trouble; the server is not being killed now.
    for _ in 0..3 {
        match ctx.http.get(url).bearer_auth(token).send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                let text = r.text().await.map_err(|e| format!("{url}: {e}"))?;
                let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
                return Ok((code, v));
            }
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Err(format!("GET {url}: {last}"))
}

/// The claims of a SET signed by a key of the service's JWKS.
fn verified_claims(ctx: &Ctx, set: &str) -> Result<Value, String> {
    for jwk in &ctx.jwks {
        if let Ok((_, payload)) = crypto::verify_compact_ps512(jwk, set) {
            return serde_json::from_slice(&payload).map_err(|e| format!("SET payload: {e}"));
        }
    }
    Err("a SET whose signature no key of the service's JWKS verifies".into())
}

/// The case's events (all pages) as (subject, event name) of verified SETs.
async fn case_events(ctx: &Ctx, case: &str, token: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let url = format!("{}/cases/{case}/events?limit=500&offset={offset}", ctx.v1);
        let (code, v) = get(ctx, &url, token).await?;
        if code != 200 {
            return Err(format!("case {case} events: HTTP {code} {v}"));
        }
        let log = v["eventLog"].as_array().cloned().unwrap_or_default();
        for set in &log {
            let claims = verified_claims(ctx, set.as_str().unwrap_or_default())
                .map_err(|e| format!("case {case}: {e}"))?;
            let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
            for k in claims["events"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.keys())
            {
                out.push((sub.clone(), k.trim_start_matches(EVENT_BASE).to_owned()));
            }
        }
        offset += log.len() as i64;
        if log.is_empty() || offset >= v["totalCount"].as_i64().unwrap_or(0) {
            return Ok(out);
        }
    }
}

fn count_events(events: &[(String, String)], sid: &str, name: &str) -> usize {
    let sub = format!("submission:{sid}");
    events
        .iter()
        .filter(|(s, e)| *s == sub && e == name)
        .count()
}

/// The checks of one acknowledged submit; the problems found.
async fn check_submitted(ctx: &Ctx, sid: &str, case: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match case_events(ctx, case, &ctx.subscriber).await {
        Ok(ev) => {
            let submits = count_events(&ev, sid, "submit-submission");
            if submits != 1 {
                problems.push(format!(
                    "submission {sid}: {submits} submit-submission events in case {case} (want 1)"
                ));
            }
            let creates = count_events(&ev, sid, "create-submission");
            if creates != 1 {
                problems.push(format!(
                    "submission {sid}: {creates} create-submission events in case {case} (want 1)"
                ));
            }
        }
        Err(e) => problems.push(format!("submission {sid}: {e}")),
    }
    let url = format!("{}/submissions/{sid}", ctx.v1);
    match get(ctx, &url, &ctx.subscriber).await {
        Ok((200, v)) => {
            if v["submissionId"] != sid || v["caseId"] != case {
                problems.push(format!(
                    "submission {sid}: GET answered another submission: {v}"
                ));
            }
            if v["encryptedMetadata"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("submission {sid}: no encryptedMetadata"));
            }
            let atts = v["attachments"].as_array().cloned().unwrap_or_default();
            if atts.is_empty() {
                problems.push(format!("submission {sid}: no attachments"));
            }
            for a in atts {
                let aid = a.as_str().unwrap_or_default();
                let url = format!("{}/submissions/{sid}/attachments/{aid}", ctx.v1);
                match get(ctx, &url, &ctx.subscriber).await {
                    Ok((200, Value::String(body))) if body.split('.').count() == 5 => {}
                    Ok((code, body)) => problems.push(format!(
                        "submission {sid}: attachment {aid}: HTTP {code}, not a compact JWE ({} bytes)",
                        body.to_string().len()
                    )),
                    Err(e) => problems.push(format!("submission {sid}: attachment {aid}: {e}")),
                }
            }
        }
        Ok((code, v)) => problems.push(format!("submission {sid}: GET answered HTTP {code} {v}")),
        Err(e) => problems.push(format!("submission {sid}: {e}")),
    }
    problems
}

/// The check of an acknowledged create whose submit was not acknowledged.
async fn check_created(ctx: &Ctx, sid: &str, case: &str) -> Vec<String> {
    match case_events(ctx, case, &ctx.sender).await {
        Ok(ev) => match count_events(&ev, sid, "create-submission") {
            1 => Vec::new(),
            n => vec![format!(
                "created submission {sid}: {n} create-submission events in case {case} (want 1)"
            )],
        },
        Err(e) => vec![format!("created submission {sid}: {e}")],
    }
}

/// Runs `check` on every item with `workers` concurrent tasks: how many items failed, and
/// all problems found.
async fn run_all<F, Fut>(
    ctx: &Arc<Ctx>,
    items: Vec<(String, String)>,
    workers: usize,
    check: F,
) -> (usize, Vec<String>)
where
    F: Fn(Arc<Ctx>, String, String) -> Fut + Send + Sync + Copy + 'static,
    Fut: std::future::Future<Output = Vec<String>> + Send,
{
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (ctx, items, next) = (ctx.clone(), items.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut bad, mut problems) = (0, Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((sid, case)) = items.get(i) else {
                    break;
                };
                let p = check(ctx.clone(), sid.clone(), case.clone()).await;
                if !p.is_empty() {
                    bad += 1;
                    problems.extend(p);
                }
            }
            (bad, problems)
        }));
    }
    let (mut bad, mut all) = (0, Vec::new());
    for t in tasks {
        match t.await {
            Ok((b, p)) => {
                bad += b;
                all.extend(p);
            }
            Err(e) => {
                bad += 1;
                all.push(format!("a check task failed: {e}"));
            }
        }
    }
    (bad, all)
}

pub async fn main(args: &[String]) -> i32 {
    match run(args).await {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("verify: ERROR: {e}");
            2
        }
    }
}

/// The number of problems found.
async fn run(args: &[String]) -> Result<usize, String> {
    let (Some(demo_path), Some(ack_path)) = (args.first(), args.get(1)) else {
        return Err("usage: bench-zustelldienst verify DEMO_JSON ACK_LOG [CREATE_LOG]".into());
    };
    let workers: usize = std::env::var("VERIFY_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let demo: Value =
        serde_json::from_slice(&std::fs::read(demo_path).map_err(|e| format!("{demo_path}: {e}"))?)
            .map_err(|e| format!("{demo_path}: {e}"))?;
    let fc = &demo["fit_connect"];
    let local = |v: &Value| {
        v.as_str()
            .unwrap_or_default()
            .replace("localhost", "127.0.0.1")
    };
    let v1 = local(&fc["submission_api_v1"]);
    let token_url = local(&fc["token_url"]);
    let dest = fc["destination_id"].as_str().unwrap_or_default().to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let subscriber = token(&http, &token_url, &fc["subscriber"]).await?;
    let sender = token(&http, &token_url, &fc["sender"]).await?;
    let jwks_url = format!("{}/.well-known/jwks.json", v1.trim_end_matches("/v1"));
    let jwks: Value = http
        .get(&jwks_url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("{jwks_url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{jwks_url}: {e}"))?;
    let jwks = jwks["keys"].as_array().cloned().unwrap_or_default();
    if jwks.is_empty() {
        return Err(format!("{jwks_url} has no keys"));
    }
    let ctx = Arc::new(Ctx {
        http,
        v1,
        subscriber,
        sender,
        jwks,
    });

    let mut problems = Vec::new();
    let acked = read_pairs(ack_path)?;
    let mut seen = HashSet::new();
    for (sid, _) in &acked {
        if !seen.insert(sid.as_str()) {
            problems.push(format!(
                "submission {sid} is acknowledged twice in {ack_path}"
            ));
        }
    }
    let created = match args.get(2) {
        Some(p) => read_pairs(p)?,
        None => Vec::new(),
    };

    // 1. The pickup list, every page, before any GET of a submission moves it on.
    let mut listed: Vec<String> = Vec::new();
    let mut total;
    loop {
        let url = format!(
            "{}/submissions?destinationId={dest}&limit=500&offset={}",
            ctx.v1,
            listed.len()
        );
        let (code, v) = get(&ctx, &url, &ctx.subscriber).await?;
        if code != 200 {
            return Err(format!("pickup list: HTTP {code} {v}"));
        }
        total = v["totalCount"].as_u64().unwrap_or(0);
        let page = v["submissions"].as_array().cloned().unwrap_or_default();
        listed.extend(
            page.iter()
                .map(|s| s["submissionId"].as_str().unwrap_or_default().to_owned()),
        );
        if page.is_empty() || listed.len() as u64 >= total {
            break;
        }
    }
    if listed.len() as u64 != total {
        problems.push(format!(
            "pickup list: {} entries over all pages, but totalCount {total}",
            listed.len()
        ));
    }
    let mut times: HashMap<&str, usize> = HashMap::new();
    for s in &listed {
        *times.entry(s.as_str()).or_default() += 1;
    }
    let mut in_list = 0usize;
    for (sid, _) in &acked {
        match times.get(sid.as_str()).copied().unwrap_or(0) {
            1 => in_list += 1,
            0 => problems.push(format!(
                "submission {sid} (acknowledged) is not in the pickup list"
            )),
            n => problems.push(format!("submission {sid} is {n} times in the pickup list")),
        }
    }
    let unacked_listed = times.keys().filter(|s| !seen.contains(**s)).count();

    // 2 and 3. Events, the submission and its attachments.
    let (submitted_bad, submitted_problems) =
        run_all(&ctx, acked.clone(), workers, |ctx, s, c| async move {
            check_submitted(&ctx, &s, &c).await
        })
        .await;
    problems.extend(submitted_problems);

    // Acknowledged creates whose submit was not acknowledged.
    let only_created: Vec<(String, String)> = created
        .iter()
        .filter(|(s, _)| !seen.contains(s.as_str()))
        .cloned()
        .collect();
    let n_only_created = only_created.len();
    let (created_bad, created_problems) =
        run_all(&ctx, only_created, workers, |ctx, s, c| async move {
            check_created(&ctx, &s, &c).await
        })
        .await;
    problems.extend(created_problems);

    println!(
        "VERIFY acked={} in_pickup_list={in_list} listed_total={} listed_unacknowledged={unacked_listed} submitted_ok={} created_acked={} created_only={n_only_created} created_only_ok={} failures={}",
        acked.len(),
        listed.len(),
        acked.len().saturating_sub(submitted_bad),
        created.len(),
        n_only_created.saturating_sub(created_bad),
        problems.len()
    );
    for p in problems.iter().take(30) {
        eprintln!("verify: FAIL: {p}");
    }
    if problems.len() > 30 {
        eprintln!("verify: … and {} more", problems.len() - 30);
    }
    Ok(problems.len())
}
