//! `journal-bench`: the tamper-evident journal on a fresh SQLite file.
//!
//! 1. Append: `APPEND` entries queued and sequenced in batches of `BATCH` through
//!    `Store::enqueue_journal_batch` and `Store::sequence_journal` (each timed apart).
//! 2. Export the log (`Store::journal_export`) and verify the file (`journal::verify_export`).
//! 3. Grow the same log to `PROOF_SIZE` entries (same store functions, larger batches),
//!    then time `PROOFS` inclusion proofs of random entries against the latest head.
//!
//! Environment: `JOURNAL_BENCH_APPEND` (1,000,000), `JOURNAL_BENCH_BATCH` (4096),
//! `JOURNAL_BENCH_PROOF_SIZE` (10,000,000; 0 skips step 3), `JOURNAL_BENCH_GROW_BATCH`
//! (16384), `JOURNAL_BENCH_PROOFS` (10,000), `JOURNAL_BENCH_DIR` (a temporary directory,
//! removed at the end). Progress goes to stderr, the result table to stdout.

use std::collections::BTreeMap;
use std::error::Error;
use std::io::{BufReader, BufWriter};
use std::time::{Duration, Instant};

use journal::{Entry, Frontier, Kind, TreeHeadSigner, verify_inclusion};
use store::{Store, StoreOptions};
use time::OffsetDateTime;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ','], "").parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: reproducible indices without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A realistic entry: a submission's UUID, an ARS, a SHA-512 and a SHA-256 digest.
fn entry(i: u64, rng: &mut Rng) -> Entry {
    let sha512: String = (0..8).map(|_| format!("{:016x}", rng.next())).collect();
    let sha256: String = (0..4).map(|_| format!("{:016x}", rng.next())).collect();
    Entry {
        at: 1_767_225_600_000 + i as i64,
        detail: i.is_multiple_of(3).then(|| "clean".to_string()),
        digests: BTreeMap::from([("metadata".into(), sha512), ("data".into(), sha256)]),
        kind: Kind::ALL[(i % Kind::ALL.len() as u64) as usize],
        subject: format!("submission:{}", uuid::Uuid::new_v4()),
        tenant: format!("03{:010}", i % 1000),
    }
}

/// CPU time of every live thread of this process (the SQLite work runs on sqlx's worker
/// threads), from the scheduler's nanosecond counters: on a shared machine, wall time
/// alone says little.
fn process_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Duration::from_nanos(total)
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("[journal-bench] {msg}");
}

struct Appender<'a> {
    store: &'a Store,
    signer: &'a std::sync::Arc<TreeHeadSigner>,
    frontier: Option<Frontier>,
    rng: Rng,
    next: u64,
    enqueue: Duration,
    sequence: Duration,
    sequence_cpu: Duration,
}

impl Appender<'_> {
    async fn append(&mut self, total: u64, batch: u64) -> Res<()> {
        let mut last_report = Instant::now();
        while self.next < total {
            let n = batch.min(total - self.next);
            let entries: Vec<Entry> = (self.next..self.next + n)
                .map(|i| entry(i, &mut self.rng))
                .collect();
            let t = Instant::now();
            self.store.enqueue_journal_batch(&entries).await?;
            self.enqueue += t.elapsed();
            let t = Instant::now();
            let cpu = process_cpu();
            let head = self
                .store
                .sequence_journal(
                    usize::try_from(n)?,
                    &mut self.frontier,
                    OffsetDateTime::now_utc(),
                    {
                        let signer = self.signer.clone();
                        move |h| signer.sign(h)
                    },
                )
                .await?
                .ok_or("nothing sequenced")?;
            self.sequence += t.elapsed();
            self.sequence_cpu += process_cpu().saturating_sub(cpu);
            self.next += n;
            if head.tree_size != self.next {
                return Err(format!("head {} after {} entries", head.tree_size, self.next).into());
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                log(format!("{} entries", self.next));
                last_report = Instant::now();
            }
        }
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Res<()> {
    let append_n = env_u64("JOURNAL_BENCH_APPEND", 1_000_000);
    let batch = env_u64("JOURNAL_BENCH_BATCH", 4096);
    let proof_size = env_u64("JOURNAL_BENCH_PROOF_SIZE", 10_000_000);
    let grow_batch = env_u64("JOURNAL_BENCH_GROW_BATCH", 16_384);
    let proofs = env_u64("JOURNAL_BENCH_PROOFS", 10_000);

    let tmp;
    let dir = match std::env::var("JOURNAL_BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let db = dir.join("journal.db");
    let store = Store::connect(
        &format!("sqlite://{}", db.display()),
        &StoreOptions::default(),
    )
    .await?;
    store.migrate().await?;
    let signer = std::sync::Arc::new(TreeHeadSigner::from_pkcs8(
        &TreeHeadSigner::generate_pkcs8()?,
    )?);
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Append.
    log(format!(
        "appending {append_n} entries in batches of {batch}"
    ));
    let mut app = Appender {
        store: &store,
        signer: &signer,
        frontier: None,
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        next: 0,
        enqueue: Duration::ZERO,
        sequence: Duration::ZERO,
        sequence_cpu: Duration::ZERO,
    };
    app.append(append_n, batch).await?;
    let seq_rate = append_n as f64 / app.sequence.as_secs_f64();
    let enq_rate = append_n as f64 / app.enqueue.as_secs_f64();
    let both_rate = append_n as f64 / (app.sequence + app.enqueue).as_secs_f64();
    rows.push((
        format!("append: sequence_journal, batches of {batch}"),
        format!(
            "{seq_rate:.0} entries/s ({append_n} in {:.1} s; CPU {:.1} µs/entry)",
            app.sequence.as_secs_f64(),
            app.sequence_cpu.as_secs_f64() * 1e6 / append_n as f64
        ),
    ));
    rows.push((
        format!("append: enqueue_journal_batch, batches of {batch}"),
        format!("{enq_rate:.0} entries/s"),
    ));
    rows.push((
        "append: enqueue + sequence together".into(),
        format!("{both_rate:.0} entries/s"),
    ));

    // 2. Export and verify.
    let export_path = dir.join("journal-export.jsonl");
    let t = Instant::now();
    let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&export_path)?);
    let (head, out) = store
        .journal_export(file, &[signer.public_key_info()])
        .await?
        .ok_or("empty log")?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let export_time = t.elapsed();
    let export_bytes = std::fs::metadata(&export_path)?.len();
    log(format!(
        "exported {} entries ({:.0} MB) in {:.2} s",
        head.tree_size,
        export_bytes as f64 / 1e6,
        export_time.as_secs_f64()
    ));
    let t = Instant::now();
    let path = export_path.clone();
    let report = tokio::task::spawn_blocking(move || -> Res<journal::VerifyReport> {
        let reader = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        Ok(journal::verify_export(reader)?)
    })
    .await??;
    let verify_time = t.elapsed();
    if report.entries != append_n || report.tree_head != head {
        return Err("the export verified, but not the expected head".into());
    }
    std::fs::remove_file(&export_path)?;
    rows.push((
        format!("export of {append_n} entries (Store::journal_export)"),
        format!(
            "{:.2} s, {:.0} MB",
            export_time.as_secs_f64(),
            export_bytes as f64 / 1e6
        ),
    ));
    rows.push((
        format!("verify_export of {append_n} entries"),
        format!("{:.2} s", verify_time.as_secs_f64()),
    ));

    // 3. Grow and prove.
    let mut proof_sizes = vec![append_n];
    if proof_size > append_n {
        log(format!(
            "growing to {proof_size} entries in batches of {grow_batch}"
        ));
        let t = Instant::now();
        app.enqueue = Duration::ZERO;
        app.sequence = Duration::ZERO;
        app.append(proof_size, grow_batch).await?;
        rows.push((
            format!("build {append_n} → {proof_size} entries, batches of {grow_batch}"),
            format!(
                "{:.0} s ({:.0} entries/s; sequencing alone {:.0}/s)",
                t.elapsed().as_secs_f64(),
                (proof_size - append_n) as f64 / t.elapsed().as_secs_f64(),
                (proof_size - append_n) as f64 / app.sequence.as_secs_f64()
            ),
        ));
        proof_sizes.push(proof_size);
    }
    for size in proof_sizes {
        let head = store.tree_head(size).await?.ok_or("no head for the size")?;
        let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ size);
        let mut times = Vec::with_capacity(usize::try_from(proofs)?);
        let cpu = process_cpu();
        for _ in 0..proofs {
            let seq = rng.next() % size;
            let t = Instant::now();
            let p = store.journal_inclusion_proof(seq, size).await?;
            times.push(t.elapsed());
            if !verify_inclusion(&p.leaf_hash, seq, size, &p.proof, &head.root_hash) {
                return Err(format!("proof of {seq} in {size} does not verify").into());
            }
        }
        let cpu = process_cpu().saturating_sub(cpu);
        times.sort_unstable();
        rows.push((
            format!("inclusion proof at {size} entries ({proofs} random)"),
            format!(
                "p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; CPU {:.3} ms/proof with verifying",
                ms(percentile(&times, 0.50)),
                ms(percentile(&times, 0.99)),
                ms(percentile(&times, 1.0)),
                ms(cpu) / proofs as f64
            ),
        ));
    }
    let db_bytes = std::fs::metadata(&db)?.len();
    rows.push((
        "SQLite file".into(),
        format!(
            "{:.0} MB for {} entries",
            db_bytes as f64 / 1e6,
            store.latest_tree_head().await?.map_or(0, |h| h.tree_size)
        ),
    ));
    store.close().await;

    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    println!("| {:width$} | result |", "figure");
    println!("|{}|--------|", "-".repeat(width + 2));
    for (k, v) in rows {
        println!("| {k:width$} | {v} |");
    }
    Ok(())
}
