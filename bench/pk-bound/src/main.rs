//! The "signing bound": what RSA-4096 private-key operations and JWE decryption cost on this
//! machine, the ceiling the Zustelldienst's throughput targets are relative to
//! (`bench/pk-bound.sh`).
//!
//! Measures, each for D seconds on 1 and on N plain threads (no async runtime, no I/O):
//! * `ps512-sign`: `crypto::RsaSigningKey::sign_compact` of a Security Event Token, and the
//!   raw aws-lc RSASSA-PSS-SHA512 signature under it;
//! * `ps512-verify`: `crypto::verify_compact_ps512` of that token;
//! * `oaep-unwrap`: raw aws-lc RSA-OAEP-256 decryption of a 32-byte content-encryption key;
//! * `jwe-decrypt`: `JweCompact::parse` + `crypto::jwe::decrypt` of 0 B, 10 KB, 1 MB and
//!   20 MB payloads (no compression), and `jwe-parse` of the 20 MB one (the upload check);
//! * unless `--no-openssl`: `openssl speed -seconds D rsa4096` and `-multi N`, parsed into
//!   the same table (OpenSSL reports per CPU-second of user time, not wall-clock).
//!
//! Usage: `pk-bound [--seconds D] [--threads N] [--no-openssl]` (defaults: 3 s, 2 threads).
//!
//! Output (stdout): a table, then one machine-readable line per row:
//! `RESULT op=… impl=… threads=… ops=… wall_s=… ops_per_s=… us_per_op=… cpu_us_per_op=…
//! mb_per_s=…`. `us_per_op` is wall time per operation per thread (latency); `cpu_us_per_op`
//! is process CPU time (user + system) per operation, from `/proc/self/stat` (`?` if not
//! readable). Exit status 2 on bad arguments, 1 if an operation fails.

use std::process::{Command, ExitCode};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{RSA_PSS_SHA512, RsaKeyPair};
use crypto::jwe;
use crypto::{JweCompact, RsaDecryptionKey, RsaSigningKey, verify_compact_ps512};

const KB: usize = 1000;
const MB: usize = 1000 * 1000;

struct Options {
    seconds: f64,
    threads: usize,
    openssl: bool,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 3.0,
        threads: 2,
        openssl: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "--seconds" => {
                let v = value()?;
                o.seconds = v
                    .trim_end_matches('s')
                    .parse()
                    .ok()
                    .filter(|s: &f64| *s > 0.0 && s.is_finite())
                    .ok_or(format!("--seconds: {v:?} is not a positive number"))?;
            }
            "--threads" => {
                let v = value()?;
                o.threads = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or(format!("--threads: {v:?} is not a positive integer"))?;
            }
            "--no-openssl" => o.openssl = false,
            "-h" | "--help" => {
                return Err("usage: pk-bound [--seconds D] [--threads N] [--no-openssl]".to_owned());
            }
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(o)
}

struct Row {
    op: String,
    implementation: &'static str,
    threads: usize,
    ops: u64,
    wall_s: f64,
    /// CPU seconds (user + system) of the whole process during the run, if known.
    cpu_s: Option<f64>,
    /// Bytes of payload per operation, for a throughput column.
    bytes_per_op: Option<usize>,
    /// Rows parsed from `openssl speed`: ops/s and seconds per op as OpenSSL reports them.
    reported: Option<(f64, f64)>,
}

impl Row {
    fn ops_per_s(&self) -> f64 {
        match self.reported {
            Some((ops_per_s, _)) => ops_per_s,
            None => self.ops as f64 / self.wall_s,
        }
    }

    fn us_per_op(&self) -> f64 {
        match self.reported {
            Some((_, s_per_op)) => s_per_op * 1e6,
            None => self.wall_s * self.threads as f64 / self.ops as f64 * 1e6,
        }
    }

    fn cpu_us_per_op(&self) -> Option<f64> {
        self.cpu_s.map(|cpu| cpu / self.ops as f64 * 1e6)
    }

    fn mb_per_s(&self) -> Option<f64> {
        self.bytes_per_op
            .filter(|b| *b > 0)
            .map(|b| b as f64 * self.ops_per_s() / MB as f64)
    }
}

/// Clock ticks per second for `/proc/self/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Runs `op` on `threads` threads for `seconds` (after a short warm-up on each), counting
/// completed operations.
fn measure<F>(
    name: &str,
    implementation: &'static str,
    threads: usize,
    seconds: f64,
    op: F,
) -> Result<Row, String>
where
    F: Fn() -> Result<(), String> + Sync,
{
    let ticks = clock_ticks();
    let barrier = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let failure = std::sync::Mutex::new(None::<String>);
    let (ops, wall, cpu) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    // Warm-up: one operation (also faults in the buffers).
                    if let Err(e) = op() {
                        *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                    barrier.wait();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = op() {
                            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            break;
                        }
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        barrier.wait();
        let cpu0 = cpu_ticks();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        let ops: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        // The last operation of each thread finishes after `stop`; count the time it took.
        let wall = t0.elapsed().as_secs_f64();
        let cpu = match (cpu0, cpu_ticks()) {
            (Some(a), Some(b)) => Some((b.saturating_sub(a)) as f64 / ticks),
            _ => None,
        };
        (ops, wall, cpu)
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(format!("{name}: {e}"));
    }
    if ops == 0 {
        return Err(format!("{name}: no operation completed in {seconds} s"));
    }
    Ok(Row {
        op: name.to_owned(),
        implementation,
        threads,
        ops,
        wall_s: wall,
        cpu_s: cpu,
        bytes_per_op: None,
        reported: None,
    })
}

/// `openssl speed -seconds D [-multi N] rsa4096`: rows for sign and verify.
fn openssl_speed(seconds: f64, multi: Option<usize>) -> Result<Vec<Row>, String> {
    let secs = format!("{}", seconds.ceil().max(1.0) as u64);
    let mut cmd = Command::new("openssl");
    cmd.args(["speed", "-seconds", &secs]);
    if let Some(n) = multi {
        cmd.args(["-multi", &n.to_string()]);
    }
    cmd.arg("rsa4096");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl speed failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 4096 bits 0.005128s 0.000085s    195.0  11739.5"
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("rsa 4096 bits"))
        .ok_or("no \"rsa 4096 bits\" line in the output of openssl speed")?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .skip(3)
        .filter_map(|f| f.trim_end_matches('s').parse().ok())
        .collect();
    let [sign_s, verify_s, sign_per_s, verify_per_s] = nums[..] else {
        return Err(format!("unexpected openssl speed line {line:?}"));
    };
    let threads = multi.unwrap_or(1);
    let row = |op: &str, s_per_op: f64, per_s: f64| Row {
        op: op.to_owned(),
        implementation: "openssl speed",
        threads,
        ops: 0,
        wall_s: 0.0,
        cpu_s: None,
        bytes_per_op: None,
        // With -multi, OpenSSL sums the children's rates but prints the per-process time per
        // operation of the sum's inverse; report latency as threads / rate like our rows.
        reported: Some((
            per_s,
            if multi.is_some() {
                threads as f64 / per_s
            } else {
                s_per_op
            },
        )),
    };
    Ok(vec![
        row("rsa4096-sign (PKCS#1 v1.5)", sign_s, sign_per_s),
        row("rsa4096-verify", verify_s, verify_per_s),
    ])
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "?".to_owned(), |v| format!("{v:.decimals$}"))
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<28} {:<15} {:>7} {:>12} {:>12} {:>12} {:>9}",
        "operation", "implementation", "threads", "µs/op", "cpu µs/op", "ops/s", "MB/s"
    );
    for r in rows {
        println!(
            "{:<28} {:<15} {:>7} {:>12.1} {:>12} {:>12.1} {:>9}",
            r.op,
            r.implementation,
            r.threads,
            r.us_per_op(),
            fmt_opt(r.cpu_us_per_op(), 1),
            r.ops_per_s(),
            fmt_opt(r.mb_per_s(), 1),
        );
    }
    for r in rows {
        println!(
            "RESULT op={} impl={} threads={} ops={} wall_s={:.3} ops_per_s={:.2} us_per_op={:.1} \
             cpu_us_per_op={} mb_per_s={}",
            r.op.split_whitespace().next().unwrap_or(&r.op),
            r.implementation.replace(' ', "-"),
            r.threads,
            r.ops,
            r.wall_s,
            r.ops_per_s(),
            r.us_per_op(),
            fmt_opt(r.cpu_us_per_op(), 1),
            fmt_opt(r.mb_per_s(), 1),
        );
    }
}

/// Payload bytes that do not compress (a PDF attachment's worth of entropy), cheap to make.
fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn run(o: &Options) -> Result<Vec<Row>, String> {
    let err = |what: &'static str| move |e: crypto::Error| format!("{what}: {e}");
    eprintln!("generating RSA-4096 keys (signing, decryption)…");
    let signing = RsaSigningKey::generate("pk-bound signing").map_err(err("keygen"))?;
    let decryption = RsaDecryptionKey::generate("pk-bound decryption").map_err(err("keygen"))?;

    let set = br#"{"$schema":"https://schema.fitko.de/fit-connect/set-payload/1.2.0/set-payload.schema.json","jti":"0b5e1d7c-3c57-4b6a-9d0b-0d1c1d7f3e55","iss":"https://rathaus.example/fit-connect/","iat":1764000000,"sub":"submission:F65FEAB2-4883-4DFF-85FB-169448545D9F","txn":"case:F73D30C6-8894-4444-8687-00AE756FEA90","events":{"https://schema.fitko.de/fit-connect/events/accept-submission":{"authenticationTags":{"metadata":"XFBoMYUZodetZdvTiFvSkQ","data":"UCGiqJxhBI3IFVdPalHHvA"}}}}"#;
    let jws = signing
        .sign_compact(Some("secevent+jwt"), set)
        .map_err(err("sign"))?;
    let public_sig = signing.public_jwk();
    let raw_sig = RsaKeyPair::from_pkcs8(&signing.pkcs8_der()).map_err(|e| e.to_string())?;
    let rng = SystemRandom::new();

    let raw_private =
        PrivateDecryptingKey::from_pkcs8(&decryption.pkcs8_der()).map_err(|e| e.to_string())?;
    let raw_enc =
        OaepPublicEncryptingKey::new(raw_private.public_key()).map_err(|e| e.to_string())?;
    let raw_dec = OaepPrivateDecryptingKey::new(raw_private).map_err(|e| e.to_string())?;
    let mut wrapped = vec![0u8; raw_enc.ciphertext_size()];
    let wrapped = raw_enc
        .encrypt(&OAEP_SHA256_MGF1SHA256, &[0x42; 32], &mut wrapped, None)
        .map_err(|e| e.to_string())?
        .to_vec();

    let sizes = [
        (0, "0 B"),
        (10 * KB, "10 KB"),
        (MB, "1 MB"),
        (20 * MB, "20 MB"),
    ];
    let mut jwes = Vec::new();
    for (len, label) in sizes {
        let compact = jwe::encrypt(
            decryption.encryption_key(),
            &payload(len),
            Some("application/json"),
            Some(decryption.kid()),
            false,
        )
        .map_err(err("encrypt"))?;
        jwes.push((len, label, compact));
    }

    let mut thread_counts = vec![1];
    if o.threads > 1 {
        thread_counts.push(o.threads);
    }
    let mut rows = Vec::new();
    for &t in &thread_counts {
        eprintln!(
            "measuring with {t} thread(s), {} s per operation…",
            o.seconds
        );
        rows.push(measure(
            "ps512-sign (SET)",
            "rathaus crypto",
            t,
            o.seconds,
            || {
                signing
                    .sign_compact(Some("secevent+jwt"), set)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )?);
        rows.push(measure(
            "ps512-sign",
            "aws-lc-rs raw",
            t,
            o.seconds,
            || {
                let mut sig = [0u8; 512];
                raw_sig
                    .sign(&RSA_PSS_SHA512, &rng, set, &mut sig)
                    .map_err(|e| e.to_string())
            },
        )?);
        rows.push(measure(
            "ps512-verify (SET)",
            "rathaus crypto",
            t,
            o.seconds,
            || {
                verify_compact_ps512(&public_sig, &jws)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        )?);
        rows.push(measure(
            "oaep-unwrap (32 B CEK)",
            "aws-lc-rs raw",
            t,
            o.seconds,
            || {
                let mut out = [0u8; 512];
                let cek = raw_dec
                    .decrypt(&OAEP_SHA256_MGF1SHA256, &wrapped, &mut out, None)
                    .map_err(|e| e.to_string())?;
                if cek.len() == 32 {
                    Ok(())
                } else {
                    Err("wrong CEK length".to_owned())
                }
            },
        )?);
        for (len, label, compact) in &jwes {
            let mut row = measure(
                &format!("jwe-decrypt {label}"),
                "rathaus crypto",
                t,
                o.seconds,
                || {
                    let parsed = JweCompact::parse(compact).map_err(|e| e.to_string())?;
                    let got =
                        jwe::decrypt(&decryption, &parsed, *len).map_err(|e| e.to_string())?;
                    if got.plaintext.len() == *len {
                        Ok(())
                    } else {
                        Err("wrong plaintext length".to_owned())
                    }
                },
            )?;
            row.bytes_per_op = Some(*len);
            rows.push(row);
        }
        if let Some((len, label, compact)) = jwes.last() {
            let mut row = measure(
                &format!("jwe-parse {label}"),
                "rathaus crypto",
                t,
                o.seconds,
                || {
                    JweCompact::parse(compact)
                        .map(drop)
                        .map_err(|e| e.to_string())
                },
            )?;
            row.bytes_per_op = Some(*len);
            rows.push(row);
        }
    }
    if o.openssl {
        for &t in &thread_counts {
            eprintln!("openssl speed rsa4096 with {t} process(es)…");
            match openssl_speed(o.seconds, (t > 1).then_some(t)) {
                Ok(r) => rows.extend(r),
                Err(e) => eprintln!("skipping openssl speed ({t}): {e}"),
            }
        }
    }
    Ok(rows)
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(rows) => {
            print_table(&rows);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pk-bound: {e}");
            ExitCode::FAILURE
        }
    }
}
