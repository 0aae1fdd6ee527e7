//! Configuration: command-line flags, then `RATHAUS_*` environment variables, then
//! `rathaus.toml`, then defaults. Every key is listed in the README.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The keys of `rathaus.toml`; each is also `RATHAUS_<KEY>` in the environment and, for the
/// common ones, a command-line flag.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub public_url: Option<String>,
    pub demo: Option<bool>,
    pub admin_token: Option<String>,
    pub key_encryption_key: Option<String>,
    pub log_format: Option<String>,
    pub log: Option<String>,
    pub db_max_connections: Option<u32>,
    pub reload_interval_secs: Option<u64>,
    pub routing_rate_limit: Option<u32>,
    pub token_rate_limit: Option<u32>,
    pub trust_forwarded_for: Option<bool>,
    pub operator_ars: Option<String>,
    pub request_timeout_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub smtp_url: Option<String>,
    /// clamd for the ePoststelle: `unix:///run/clamav/clamd.ctl` or `tcp://host:3310`.
    pub clamd_url: Option<String>,
    /// Run the ePoststelle worker on this node (default true).
    pub poststelle_worker: Option<bool>,
    pub mail_from: Option<String>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
    pub argon2_parallelism: Option<u32>,
    pub hash_concurrency: Option<usize>,
    pub session_idle_minutes: Option<u64>,
    pub session_absolute_hours: Option<u64>,
    pub postfach_max_files: Option<usize>,
    pub postfach_max_file_mb: Option<u64>,
    pub dkim_key_file: Option<PathBuf>,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
}

impl FileConfig {
    /// Reads `path`, or `./rathaus.toml` if it exists and no path was given.
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from("rathaus.toml"), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("invalid configuration in {}", path.display())),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                Ok(FileConfig::default())
            }
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Fills every unset key from the environment (`RATHAUS_<KEY>`), which wins over the file.
    pub fn overlay_env(mut self) -> Result<FileConfig> {
        fn var(key: &str) -> Option<String> {
            std::env::var(format!("RATHAUS_{}", key.to_ascii_uppercase()))
                .ok()
                .filter(|v| !v.is_empty())
        }
        fn parse<T: std::str::FromStr>(key: &str) -> Result<Option<T>> {
            match var(key) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| {
                    anyhow::anyhow!(
                        "RATHAUS_{} has an invalid value {v:?}",
                        key.to_ascii_uppercase()
                    )
                }),
            }
        }
        macro_rules! env_string {
            ($($field:ident),*) => { $( if let Some(v) = var(stringify!($field)) { self.$field = Some(v.into()); } )* };
        }
        macro_rules! env_parsed {
            ($($field:ident),*) => { $( if let Some(v) = parse(stringify!($field))? { self.$field = Some(v); } )* };
        }
        env_string!(
            listen,
            data_dir,
            database_url,
            public_url,
            admin_token,
            key_encryption_key,
            log_format,
            log,
            operator_ars,
            smtp_url,
            clamd_url,
            mail_from,
            dkim_key_file,
            dkim_selector,
            dkim_domain
        );
        env_parsed!(
            demo,
            db_max_connections,
            reload_interval_secs,
            routing_rate_limit,
            token_rate_limit,
            trust_forwarded_for,
            poststelle_worker,
            request_timeout_secs,
            shutdown_grace_secs,
            argon2_memory_kib,
            argon2_iterations,
            argon2_parallelism,
            hash_concurrency,
            session_idle_minutes,
            session_absolute_hours,
            postfach_max_files,
            postfach_max_file_mb
        );
        Ok(self)
    }
}

/// The effective settings, after all sources and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub public_url: Option<String>,
    pub demo: bool,
    pub admin_token: Option<String>,
    pub key_encryption_key: Option<String>,
    pub db_max_connections: u32,
    pub reload_interval_secs: u64,
    pub routing_rate_limit: u32,
    pub token_rate_limit: u32,
    pub trust_forwarded_for: bool,
    pub operator_ars: String,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
    pub smtp_url: Option<String>,
    pub clamd_url: Option<String>,
    pub poststelle_worker: bool,
    pub mail_from: String,
    pub accounts: app::AccountSettings,
    pub postfach: app::PostfachSettings,
    pub dkim_key_file: Option<PathBuf>,
    pub dkim_selector: String,
    pub dkim_domain: Option<String>,
}

impl Config {
    pub fn resolve(f: FileConfig) -> Result<Config> {
        let data_dir = f
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./rathaus-data"));
        let database_url = f
            .database_url
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("rathaus.db").display()));
        if let Some(url) = &f.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url must start with http:// or https://, got {url:?}");
        }
        let interval = f.reload_interval_secs.unwrap_or(2);
        if interval == 0 {
            bail!("reload_interval_secs must be at least 1");
        }
        Ok(Config {
            listen: f.listen.unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir,
            database_url,
            public_url: f.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            demo: f.demo.unwrap_or(false),
            admin_token: f.admin_token,
            key_encryption_key: f.key_encryption_key,
            db_max_connections: f.db_max_connections.unwrap_or(16).max(1),
            reload_interval_secs: interval,
            routing_rate_limit: f.routing_rate_limit.unwrap_or(60_000),
            token_rate_limit: f.token_rate_limit.unwrap_or(6_000),
            trust_forwarded_for: f.trust_forwarded_for.unwrap_or(false),
            operator_ars: f.operator_ars.unwrap_or_else(|| "03".into()),
            request_timeout_secs: f.request_timeout_secs.unwrap_or(30).max(1),
            shutdown_grace_secs: f.shutdown_grace_secs.unwrap_or(30),
            smtp_url: f.smtp_url,
            clamd_url: f.clamd_url,
            poststelle_worker: f.poststelle_worker.unwrap_or(true),
            dkim_key_file: f.dkim_key_file,
            dkim_selector: f.dkim_selector.unwrap_or_else(|| "rathaus".into()),
            dkim_domain: f.dkim_domain,
            mail_from: f
                .mail_from
                .unwrap_or_else(|| "Rathaus <noreply@localhost>".into()),
            postfach: {
                let d = app::PostfachSettings::default();
                let files = f.postfach_max_files.unwrap_or(d.max_files);
                let mb = f
                    .postfach_max_file_mb
                    .unwrap_or(d.max_file_bytes / (1024 * 1024));
                if !(1..=100).contains(&files) || !(1..=1024).contains(&mb) {
                    bail!("postfach_max_files must be 1–100 and postfach_max_file_mb 1–1024");
                }
                app::PostfachSettings {
                    max_files: files,
                    max_file_bytes: mb * 1024 * 1024,
                    ..d
                }
            },
            accounts: {
                let defaults = app::AccountSettings::default();
                let d = defaults.argon2;
                let argon2 = servicekonto::password::Argon2Params::new(
                    f.argon2_memory_kib.unwrap_or(d.memory_kib()),
                    f.argon2_iterations.unwrap_or(d.iterations()),
                    f.argon2_parallelism.unwrap_or(d.parallelism()),
                )
                .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
                let idle = f.session_idle_minutes.unwrap_or(30);
                let absolute = f.session_absolute_hours.unwrap_or(12);
                if idle == 0 || absolute == 0 || idle > absolute * 60 {
                    bail!(
                        "session_idle_minutes ({idle}) must be at least 1 and within session_absolute_hours ({absolute})"
                    );
                }
                app::AccountSettings {
                    argon2,
                    hash_concurrency: f
                        .hash_concurrency
                        .filter(|n| *n > 0)
                        .unwrap_or(defaults.hash_concurrency),
                    session_idle: std::time::Duration::from_secs(idle * 60),
                    session_absolute: std::time::Duration::from_secs(absolute * 3600),
                    ..defaults
                }
            },
        })
    }

    /// The public base URL: configured, or derived from the address actually bound.
    /// Browsers refuse passkeys on IP-address origins, so loopback becomes `localhost`.
    pub fn public_url_for(&self, bound: std::net::SocketAddr) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        if bound.ip().is_loopback() {
            format!("http://localhost:{}", bound.port())
        } else {
            format!("http://{bound}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::resolve(FileConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://./rathaus-data/rathaus.db");
        assert_eq!(
            c.public_url_for("127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!())),
            "http://localhost:8080"
        );
        assert_eq!(
            c.public_url_for("10.0.0.5:80".parse().unwrap_or_else(|_| unreachable!())),
            "http://10.0.0.5:80"
        );
    }

    #[test]
    fn file_is_strict() {
        assert!(toml::from_str::<FileConfig>("listen = \"0.0.0.0:80\"\n").is_ok());
        assert!(toml::from_str::<FileConfig>("lisen = \"x\"\n").is_err());
        let bad = FileConfig {
            public_url: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(Config::resolve(bad).is_err());
    }
}
