//! Raw Argon2id rate for the login benchmark (`bench/login.sh`).
//!
//! Runs `servicekonto::password::PasswordHasher::verify_blocking` — the very code a password
//! login runs on tokio's blocking pool — in a loop on N plain threads for D seconds, and prints
//! verifications per second. No HTTP, no database, no async runtime, no semaphore: the ceiling a
//! server with N hashing threads could reach if logins cost nothing but the hash.
//!
//! Usage: `bench-argon2 [--threads N] [--seconds D] [--memory-kib M] [--iterations T]
//! [--parallelism P]`
//!
//! Defaults come from the same environment variables `rathaus serve` reads, so that both sides
//! of the comparison use the same settings: `RATHAUS_HASH_CONCURRENCY` (0 or unset: as the server, one thread
//! per CPU this process may use, as the server), `RATHAUS_ARGON2_MEMORY_KIB`,
//! `RATHAUS_ARGON2_ITERATIONS`, `RATHAUS_ARGON2_PARALLELISM` (unset: `Argon2Params::default()`,
//! m = 19,456 KiB, t = 2, p = 1). `--seconds` defaults to 10.
//!
//! Output (stdout): two human-readable lines and one machine-readable line
//! `RESULT utime_ticks=… stime_ticks=… minflt=… rate=… per_thread=… threads=… seconds=…
//! verifications=… m_kib=… t=… p=… …` (CPU time in clock ticks and minor page faults of the
//! measured loop, from `/proc/self/stat`; `?` where that is not readable).
//! Exit status 2 on bad arguments, 1 if hashing or verifying fails.

use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use servicekonto::password::{Argon2Params, PasswordHasher, Verified, default_concurrency};

/// Not a secret: the password every verification checks.
const PASSWORD: &str = "Fahrrad Sonnenblume Hafen 7";

struct Options {
    threads: usize,
    seconds: f64,
    params: Argon2Params,
}

fn env_number<T: std::str::FromStr>(key: &str) -> Result<Option<T>, String> {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} has an invalid value {v:?}")),
        _ => Ok(None),
    }
}

fn parse_seconds(v: &str) -> Result<f64, String> {
    let t = v.trim();
    let (num, factor) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    match num.parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n * factor),
        _ => Err(format!(
            "--seconds: {v:?} is not a positive duration (10, 10s, 1m)"
        )),
    }
}

fn parse_options() -> Result<Options, String> {
    let defaults = Argon2Params::default();
    let mut threads: usize = env_number("RATHAUS_HASH_CONCURRENCY")?.unwrap_or(0);
    let mut memory: u32 = env_number("RATHAUS_ARGON2_MEMORY_KIB")?.unwrap_or(defaults.memory_kib());
    let mut iterations: u32 =
        env_number("RATHAUS_ARGON2_ITERATIONS")?.unwrap_or(defaults.iterations());
    let mut parallelism: u32 =
        env_number("RATHAUS_ARGON2_PARALLELISM")?.unwrap_or(defaults.parallelism());
    let mut seconds = 10.0;

    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{name} needs a value"))?,
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: {v:?} is not a number"))
        };
        match name.as_str() {
            "--threads" => threads = usize::try_from(number(&value)?).map_err(|e| e.to_string())?,
            "--seconds" => seconds = parse_seconds(&value)?,
            "--memory-kib" => memory = u32::try_from(number(&value)?).map_err(|e| e.to_string())?,
            "--iterations" => {
                iterations = u32::try_from(number(&value)?).map_err(|e| e.to_string())?
            }
            "--parallelism" => {
                parallelism = u32::try_from(number(&value)?).map_err(|e| e.to_string())?
            }
            _ => return Err(format!("unknown argument {name}")),
        }
    }
    if threads == 0 {
        threads = default_concurrency();
    }
    let params = Argon2Params::new(memory, iterations, parallelism).map_err(|e| e.to_string())?;
    Ok(Options {
        threads,
        seconds,
        params,
    })
}

/// This process's CPU time (user, system, in clock ticks) and minor page faults, from
/// `/proc/self/stat` (Linux); `None` elsewhere.
fn self_stat() -> Option<[u64; 3]> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after the comm: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
    // utime stime
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some([get(11)?, get(12)?, get(7)?])
}

/// What one thread did: its verification times, and when its last one ended.
struct ThreadRun {
    durations: Vec<Duration>,
    end: Instant,
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // nearest rank
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench-argon2: {e}");
            }
            eprintln!(
                "usage: bench-argon2 [--threads N] [--seconds D] [--memory-kib M] [--iterations T] [--parallelism P]\n\
                 defaults: RATHAUS_HASH_CONCURRENCY (else the server's default: one thread per CPU but one), RATHAUS_ARGON2_MEMORY_KIB / \
                 _ITERATIONS / _PARALLELISM (else m=19456 t=2 p=1), 10 s"
            );
            return ExitCode::from(2);
        }
    };
    let Options {
        threads,
        seconds,
        params,
    } = options;

    // The permit bound of the hasher plays no part here (the *_blocking methods take none);
    // it is set to the thread count only so that the Debug output matches the server's.
    let hasher = PasswordHasher::new(params, threads);
    let phc = match hasher.hash_blocking(PASSWORD) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bench-argon2: hashing failed: {e}");
            return ExitCode::from(1);
        }
    };
    // The loop below must measure a successful verification without a rehash, as a login with
    // an up-to-date hash does; and a wrong password must not pass.
    match (
        hasher.verify_blocking(PASSWORD, Some(&phc)),
        hasher.verify_blocking("not the password", Some(&phc)),
    ) {
        (
            Ok(Verified::Yes {
                needs_rehash: false,
            }),
            Ok(Verified::No),
        ) => {}
        (right, wrong) => {
            eprintln!(
                "bench-argon2: self-check failed: right password {right:?}, wrong password {wrong:?}"
            );
            return ExitCode::from(1);
        }
    }

    let budget = Duration::from_secs_f64(seconds);
    let barrier = Barrier::new(threads + 1);
    let mut start = Instant::now();
    let mut failed = false;
    let mut stat_start = None;
    let runs: Vec<ThreadRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let hasher = &hasher;
                let phc = phc.as_str();
                let barrier = &barrier;
                scope.spawn(move || {
                    // one unmeasured verification per thread: first-touch of the allocator's
                    // memory for the Argon2 blocks
                    let _ = hasher.verify_blocking(PASSWORD, Some(phc));
                    barrier.wait();
                    let start = Instant::now();
                    let mut durations = Vec::with_capacity(1024);
                    let mut ok = true;
                    let mut end = start;
                    while end.duration_since(start) < budget {
                        let t0 = Instant::now();
                        let r = hasher.verify_blocking(PASSWORD, Some(phc));
                        end = Instant::now();
                        ok &= matches!(r, Ok(Verified::Yes { .. }));
                        durations.push(end - t0);
                    }
                    (ThreadRun { durations, end }, ok)
                })
            })
            .collect();
        barrier.wait();
        start = Instant::now();
        stat_start = self_stat();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok((run, ok)) => {
                    failed |= !ok;
                    Some(run)
                }
                Err(_) => {
                    failed = true;
                    None
                }
            })
            .collect()
    });
    let stat_end = self_stat();
    if failed || runs.len() != threads {
        eprintln!("bench-argon2: a verification failed or a thread panicked");
        return ExitCode::from(1);
    }

    let end = runs.iter().map(|r| r.end).max().unwrap_or(start);
    let wall = end.duration_since(start).as_secs_f64().max(1e-9);
    let mut all: Vec<Duration> = runs
        .iter()
        .flat_map(|r| r.durations.iter().copied())
        .collect();
    all.sort_unstable();
    let total = all.len();
    let rate = total as f64 / wall;
    let per_thread = rate / threads as f64;
    let mean_ms = all.iter().map(Duration::as_secs_f64).sum::<f64>() * 1000.0 / total.max(1) as f64;
    let (p50, p99) = (percentile_ms(&all, 50.0), percentile_ms(&all, 99.0));
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);

    println!(
        "bench-argon2: Argon2id m={} KiB t={} p={}, {threads} threads ({cpus} CPUs), {wall:.2} s",
        params.memory_kib(),
        params.iterations(),
        params.parallelism(),
    );
    println!(
        "verifications: {total} = {rate:.1}/s ({per_thread:.1}/s per thread); one verification: \
         mean {mean_ms:.1} ms, p50 {p50:.1} ms, p99 {p99:.1} ms"
    );
    // CPU and page faults of the measured loop (the process does nothing else meanwhile)
    let (utime, stime, minflt) = match (stat_start, stat_end) {
        (Some(a), Some(b)) => (
            b[0].saturating_sub(a[0]).to_string(),
            b[1].saturating_sub(a[1]).to_string(),
            b[2].saturating_sub(a[2]).to_string(),
        ),
        _ => ("?".into(), "?".into(), "?".into()),
    };
    println!(
        "RESULT utime_ticks={utime} stime_ticks={stime} minflt={minflt} rate={rate:.2} per_thread={per_thread:.2} threads={threads} cpus={cpus} seconds={wall:.3} \
         verifications={total} m_kib={} t={} p={} mean_ms={mean_ms:.2} p50_ms={p50:.2} p99_ms={p99:.2}",
        params.memory_kib(),
        params.iterations(),
        params.parallelism(),
    );
    ExitCode::SUCCESS
}
