//! `rathaus`: the one binary. Parses the command line, loads the configuration, wires the
//! crates together and runs the chosen command.

mod config;

// mimalloc: the Routing API allocates many small, short-lived buffers per request; glibc's
// allocator showed up with ~10% of CPU time in profiles.
/// mimalloc reads its options from the environment once, when the process starts, and its
/// defaults keep freed memory resident (eagerly committed arenas, purged lazily and only while
/// allocating): a server that loads the directory and then idles would hold ~60 MB instead of
/// ~35 MB. So `serve` re-executes itself once with settings that return memory promptly; a
/// 100 ms purge delay batches the returns under load, where they cost nothing measurable.
/// Values the operator sets in the environment win; exec keeps the process id.
fn tune_allocator_for_serving() {
    use std::os::unix::process::CommandExt;
    const SETTINGS: [(&str, &str); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", "0"),
        ("MIMALLOC_PURGE_DELAY", "100"),
    ];
    if std::env::var_os("RATHAUS_ALLOCATOR_TUNED").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env("RATHAUS_ALLOCATOR_TUNED", "1");
    for (key, value) in SETTINGS {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    // Only returns on failure; then serve with the defaults rather than not at all.
    let error = command.exec();
    eprintln!("note: could not re-execute with allocator settings ({error}); continuing");
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use app::{App, RuleInput, Settings};
use clap::{Args, Parser, Subcommand};
use config::{Config, FileConfig};

#[derive(Parser, Debug)]
#[command(
    name = "rathaus",
    version,
    about = "Digital Basisdienste for German municipalities"
)]
struct Cli {
    /// Configuration file (default: ./rathaus.toml if it exists).
    #[arg(long, global = true, env = "RATHAUS_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the SQLite database, keys and demo.json.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER@HOST/DB (default: SQLite inside the data dir).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (migrates the database first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Import reference data.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage responsibility rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Manage OAuth2 / OpenID Connect clients (online services, API clients).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Manage the OpenID provider's signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The journal (transparency log): export it, or verify an export offline.
    #[command(subcommand)]
    Journal(JournalCommand),
}

#[derive(Subcommand, Debug)]
enum JournalCommand {
    /// Write the whole log up to the latest signed tree head to FILE (JSON lines).
    Export { file: PathBuf },
    /// Check an export offline: every entry, the recomputed root against the signed tree
    /// head, and its Ed25519 signature. Needs no database.
    Verify {
        file: PathBuf,
        /// The journal's public key (base64, as GET /journal/v1/tree-head publishes it);
        /// without it the key in the file is used and its id printed for comparison.
        #[arg(long)]
        public_key: Option<String>,
    },
}

// Parsed once per run: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Register a client and print its id and secret (the secret is shown only now).
    Add {
        #[arg(long)]
        name: String,
        /// web: signs users in (authorization code flow); api: client credentials only.
        #[arg(long, default_value = "api")]
        kind: String,
        /// Allowed redirect URI (repeatable; web clients need at least one).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Allowed post-logout redirect URI (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// Scope an API client may request (repeatable), e.g. postfach:deliver.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// FIT-Connect destination the client subscribes to (repeatable; it is linked).
        #[arg(long = "destination")]
        destinations: Vec<String>,
        /// A FIT-Connect client: `sender` (send-submissions) or `subscriber`
        /// (subscribe-destinations and manage-destinations). Adds those scopes.
        #[arg(long = "fit-connect")]
        fit_connect: Option<String>,
        /// The authority (ARS) the client acts for.
        #[arg(long)]
        authority: Option<String>,
        /// JWK set file with the client's public keys (enables private_key_jwt).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// ID token signing algorithm: ES256 (default) or RS256.
        #[arg(long)]
        id_token_alg: Option<String>,
        /// public (default) or pairwise subject identifiers.
        #[arg(long, default_value = "public")]
        subject_type: String,
        /// Sector of pairwise subjects (default: host of the first redirect URI).
        #[arg(long)]
        sector: Option<String>,
        #[arg(long)]
        frontchannel_logout_uri: Option<String>,
        #[arg(long)]
        backchannel_logout_uri: Option<String>,
        /// Print {"client_id", "client_secret"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the registered clients.
    List,
    /// Stop a client from getting tokens (its live access tokens stop working too).
    Disable { client_id: String },
    /// Allow a disabled client again.
    Enable { client_id: String },
    /// Link a subscriber client to a FIT-Connect destination (it may then fetch and decide
    /// the destination's submissions).
    Link {
        client_id: String,
        destination_id: String,
    },
    /// Undo `link`.
    Unlink {
        client_id: String,
        destination_id: String,
    },
    /// Give a client a new secret (the old one stops working at once).
    RotateSecret {
        client_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// New ES256 and RS256 signing keys; the old ones stay published for the overlap.
    Rotate {
        /// Hours the old keys stay in the JWKS (longer than relying parties cache it).
        #[arg(long, default_value_t = 24)]
        overlap_hours: i64,
    },
    /// Show the published keys.
    List,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<String>,
    /// Public base URL used in every absolute URL (default derived from --listen).
    #[arg(long)]
    public_url: Option<String>,
    /// Seed the demo: Lower Saxony's authorities, the catalogue, rules and demo values.
    #[arg(long)]
    demo: bool,
}

#[derive(Subcommand, Debug)]
enum ImportCommand {
    /// A Gemeindeverzeichnis CSV (ebene,ars,name,typ,sitz).
    Areas {
        file: PathBuf,
        /// CSV (ars,nachfolger_ars) naming who took over from authorities that disappear.
        #[arg(long)]
        successors: Option<PathBuf>,
    },
    /// A Leistungskatalog CSV (leistungsschluessel,bezeichnung,typisierung).
    Services { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// List rules, optionally only for one service or inside one area.
    List {
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        area: Option<String>,
    },
    /// Add one rule: give --authority or --level.
    Add {
        #[arg(long)]
        service: String,
        #[arg(long)]
        area: String,
        #[arg(long)]
        authority: Option<String>,
        /// gemeindeverband, kreis or land
        #[arg(long)]
        level: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove a rule by id.
    Remove { id: String },
    /// Import rules from CSV (leistungsschluessel,gebiet_ars,zustaendig_ars,ebene[,notiz]).
    Import {
        file: PathBuf,
        /// Replace existing rules for the same service and area.
        #[arg(long)]
        replace: bool,
    },
}

const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

fn main() -> Result<()> {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        tune_allocator_for_serving();
    }
    let mut file = FileConfig::load(cli.config.as_deref())?.overlay_env()?;
    if let Some(d) = &cli.data_dir {
        file.data_dir = Some(d.clone());
    }
    if let Some(u) = &cli.database_url {
        file.database_url = Some(u.clone());
    }
    if let Some(f) = &cli.log_format {
        file.log_format = Some(f.clone());
    }
    if let Command::Serve(args) = &cli.command {
        if let Some(l) = &args.listen {
            file.listen = Some(l.clone());
        }
        if let Some(u) = &args.public_url {
            file.public_url = Some(u.clone());
        }
        if args.demo {
            file.demo = Some(true);
        }
    }
    init_logging(file.log_format.as_deref(), file.log.as_deref())?;
    let config = Config::resolve(file)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command, config))
}

fn init_logging(format: Option<&str>, filter: Option<&str>) -> Result<()> {
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn".into());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).context("invalid log filter")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.unwrap_or("text") {
        "json" => builder.json().flatten_event(true).init(),
        "text" => builder.init(),
        other => bail!("log_format must be text or json, got {other:?}"),
    }
    Ok(())
}

async fn open_store(config: &Config) -> Result<store::Store> {
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    }
    let options = store::StoreOptions {
        max_connections: config.db_max_connections,
        ..Default::default()
    };
    let store = store::Store::connect(&config.database_url, &options)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                store::redact_url(&config.database_url)
            )
        })?;
    let applied = store.migrate().await.context("database migration failed")?;
    if !applied.is_empty() {
        tracing::info!(?applied, "database migrated");
    }
    Ok(store)
}

/// The key-encryption key: configured, or kept in the data dir (created on first start).
fn load_kek(config: &Config) -> Result<crypto::Kek> {
    if let Some(k) = &config.key_encryption_key {
        return crypto::Kek::from_base64(k).context("RATHAUS_KEY_ENCRYPTION_KEY is invalid");
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let path = config.data_dir.join("kek");
    match std::fs::read_to_string(&path) {
        Ok(text) => crypto::Kek::from_base64(text.trim())
            .with_context(|| format!("{} is invalid", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kek = crypto::Kek::generate();
            write_secret(&path, kek.to_base64().as_bytes())?;
            tracing::info!(path = %path.display(), "created a key-encryption key; back it up with the database");
            Ok(kek)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes a file readable by the owner only, atomically.
fn write_secret(path: &Path, content: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(content)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Where `serve` records the public URL it serves under.
const SERVED_URL_KEY: &str = "serve.public_url";

/// The app for a CLI command. Destination signatures name the public URL, and a command
/// that changes rules re-signs them: without `public_url` configured, the command uses the
/// URL the server last served under, so it neither re-signs every destination for another
/// URL nor overwrites the running server's signatures.
async fn open_cli_app(config: &Config) -> Result<Arc<App>> {
    let store = open_store(config).await?;
    let public_url = match &config.public_url {
        Some(u) => u.clone(),
        None => match store.meta_get(SERVED_URL_KEY).await? {
            Some(u) => u,
            None => cli_public_url(config),
        },
    };
    open_app_on(store, config, public_url).await
}

async fn open_app(config: &Config, public_url: String) -> Result<Arc<App>> {
    let store = open_store(config).await?;
    open_app_on(store, config, public_url).await
}

async fn open_app_on(store: store::Store, config: &Config, public_url: String) -> Result<Arc<App>> {
    let kek = load_kek(config)?;
    let settings = Settings {
        accounts: config.accounts.clone(),
        postfach: config.postfach.clone(),
        blob_dir: Some(config.data_dir.join("blobs")),
        ..Settings::new(public_url)
    };
    Ok(App::open(store, kek, settings).await?)
}

async fn run(command: Command, config: Config) -> Result<()> {
    match command {
        Command::Serve(_) => serve(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.check_ready().await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Import(cmd) => {
            let app = open_cli_app(&config).await?;
            match cmd {
                ImportCommand::Areas { file, successors } => {
                    let csv = app::read_limited(&file, MAX_IMPORT_BYTES)?;
                    let succ = successors
                        .map(|p| app::read_limited(&p, MAX_IMPORT_BYTES))
                        .transpose()?;
                    let s = app
                        .import_areas(&csv, &file.display().to_string(), succ.as_deref())
                        .await?;
                    println!(
                        "areas imported: {} new, {} updated, {} deactivated, {} unchanged ({} destinations created)",
                        s.inserted, s.updated, s.deactivated, s.unchanged, s.destinations_created
                    );
                }
                ImportCommand::Services { file } => {
                    let csv = app::read_limited(&file, MAX_IMPORT_BYTES)?;
                    let (inserted, updated) = app.import_services(&csv).await?;
                    println!("services imported: {inserted} new, {updated} updated");
                }
            }
            Ok(())
        }
        Command::Rules(cmd) => rules(cmd, &config).await,
        Command::Clients(cmd) => clients(cmd, &config).await,
        Command::Keys(cmd) => keys(cmd, &config).await,
        Command::Journal(cmd) => journal_command(cmd, &config).await,
    }
}

async fn clients(cmd: ClientsCommand, config: &Config) -> Result<()> {
    let app = open_cli_app(config).await?;
    match cmd {
        ClientsCommand::Add {
            name,
            kind,
            redirect_uris,
            post_logout_redirect_uris,
            mut scopes,
            destinations,
            fit_connect,
            authority,
            jwks,
            id_token_alg,
            subject_type,
            sector,
            frontchannel_logout_uri,
            backchannel_logout_uri,
            json,
        } => {
            match fit_connect.as_deref() {
                None => {}
                Some("sender") => scopes.push(app::zustelldienst::SCOPE_SEND.into()),
                Some("subscriber") => {
                    scopes.push(app::zustelldienst::SCOPE_SUBSCRIBE.into());
                    scopes.push(app::zustelldienst::SCOPE_MANAGE.into());
                }
                Some(other) => anyhow::bail!("--fit-connect {other:?}: use sender or subscriber"),
            }
            let kind = match kind.as_str() {
                "web" => oidc::ClientKind::Web,
                "api" => oidc::ClientKind::Api,
                other => anyhow::bail!("--kind {other:?}: use web or api"),
            };
            let subject_type = match subject_type.as_str() {
                "public" => oidc::SubjectType::Public,
                "pairwise" => oidc::SubjectType::Pairwise,
                other => anyhow::bail!("--subject-type {other:?}: use public or pairwise"),
            };
            let jwks = jwks
                .map(|p| -> Result<serde_json::Value> {
                    let bytes = app::read_limited(&p, 256 * 1024)?;
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("{}: not a JSON JWK set", p.display()))
                })
                .transpose()?;
            let registration = oidc::ClientConfig {
                kind,
                redirect_uris,
                post_logout_redirect_uris,
                id_token_alg,
                subject_type,
                sector_identifier: sector,
                jwks,
                frontchannel_logout_uri,
                backchannel_logout_uri,
                destinations,
            };
            let scope_refs: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let (id, secret) = app
                .register_client(&name, authority.as_deref(), &scope_refs, &registration)
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": id, "client_secret": secret})
                );
            } else {
                println!(
                    "client_id:     {id}\nclient_secret: {secret}\n(the secret is shown only now)"
                );
            }
        }
        ClientsCommand::List => {
            for c in app.oauth_clients().await? {
                let reg: oidc::ClientConfig = serde_json::from_str(&c.config).unwrap_or_default();
                println!(
                    "{}\t{}\t{:?}\t{}\t{}\t{}",
                    c.client_id,
                    if c.active { "active" } else { "disabled" },
                    reg.kind,
                    c.name,
                    c.scopes,
                    reg.redirect_uris.join(" ")
                );
            }
        }
        ClientsCommand::Disable { client_id } => {
            anyhow::ensure!(
                app.set_client_active(&client_id, false).await?,
                "no client {client_id}"
            );
            println!("client {client_id} disabled");
        }
        ClientsCommand::Enable { client_id } => {
            anyhow::ensure!(
                app.set_client_active(&client_id, true).await?,
                "no client {client_id}"
            );
            println!("client {client_id} enabled");
        }
        ClientsCommand::Link {
            client_id,
            destination_id,
        } => {
            app.zd_link_client(&destination_id, &client_id).await?;
            println!("client {client_id} linked to destination {destination_id}");
        }
        ClientsCommand::Unlink {
            client_id,
            destination_id,
        } => {
            anyhow::ensure!(
                app.zd_unlink_client(&destination_id, &client_id).await?,
                "client {client_id} is not linked to destination {destination_id}"
            );
            println!("client {client_id} unlinked from destination {destination_id}");
        }
        ClientsCommand::RotateSecret { client_id, json } => {
            let Some(secret) = app.rotate_client_secret(&client_id).await? else {
                anyhow::bail!("no client {client_id}");
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"client_id": client_id, "client_secret": secret})
                );
            } else {
                println!("client_secret: {secret}\n(the secret is shown only now)");
            }
        }
    }
    Ok(())
}

async fn journal_command(cmd: JournalCommand, config: &Config) -> Result<()> {
    match cmd {
        JournalCommand::Export { file } => {
            let app = open_cli_app(config).await?;
            // Sequence what is still queued, so the export is as complete as it can be.
            while app.journal_sequence_once().await?.is_some() {}
            match app.journal_export_file(&file).await? {
                Some(head) => println!(
                    "exported {} entries to {} (tree head {}, root {})",
                    head.tree_size,
                    file.display(),
                    head.timestamp,
                    head.root_hash
                ),
                None => println!("the journal is empty: nothing exported"),
            }
        }
        JournalCommand::Verify { file, public_key } => {
            let f = std::fs::File::open(&file).with_context(|| format!("{}", file.display()))?;
            let reader = std::io::BufReader::new(f);
            let report = match public_key {
                Some(k) => {
                    use base64::Engine as _;
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(k.trim())
                        .context("--public-key must be base64")?;
                    journal::verify_export_with_keys(
                        reader,
                        &[journal::PublicKeyInfo::ed25519(&raw)],
                    )
                }
                None => journal::verify_export(reader),
            }
            .map_err(|e| anyhow::anyhow!("{}: NOT verified: {e}", file.display()))?;
            println!(
                "{}: verified {} entries; tree head of size {} at {} signed by key {}",
                file.display(),
                report.entries,
                report.tree_head.tree_size,
                report.tree_head.timestamp,
                report.key.key_id
            );
        }
    }
    Ok(())
}

async fn keys(cmd: KeysCommand, config: &Config) -> Result<()> {
    let app = open_cli_app(config).await?;
    match cmd {
        KeysCommand::Rotate { overlap_hours } => {
            anyhow::ensure!(
                (0..=24 * 90).contains(&overlap_hours),
                "--overlap-hours must be 0 to 2160"
            );
            let kids = app
                .rotate_oidc_keys(time::Duration::hours(overlap_hours))
                .await?;
            println!(
                "new signing keys: {} (old keys stay published for {overlap_hours} h; running nodes switch within 30 s)",
                kids.join(", ")
            );
        }
        KeysCommand::List => {
            let jwks: serde_json::Value = serde_json::from_slice(&app.oidc_jwks().await?)?;
            println!("{}", serde_json::to_string_pretty(&jwks)?);
        }
    }
    Ok(())
}

fn cli_public_url(config: &Config) -> String {
    config
        .public_url
        .clone()
        .unwrap_or_else(|| match config.listen.parse() {
            Ok(addr) => config.public_url_for(addr),
            Err(_) => format!("http://{}", config.listen),
        })
}

async fn rules(cmd: RulesCommand, config: &Config) -> Result<()> {
    let app = open_cli_app(config).await?;
    match cmd {
        RulesCommand::List { service, area } => {
            let dir = app.directory();
            for r in dir.rules().iter().filter(|r| {
                service.as_deref().is_none_or(|s| r.service.as_str() == s)
                    && area
                        .as_deref()
                        .is_none_or(|a| r.area.as_str().starts_with(a))
            }) {
                let target = match &r.target {
                    verzeichnis::RuleTarget::Authority(a) => format!("authority {a}"),
                    verzeichnis::RuleTarget::Level(l) => format!("level {}", l.as_str()),
                };
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    r.id,
                    r.service,
                    r.area,
                    target,
                    r.note.as_deref().unwrap_or("")
                );
            }
        }
        RulesCommand::Add {
            service,
            area,
            authority,
            level,
            note,
        } => {
            let added = app
                .add_rules(
                    &[RuleInput {
                        service,
                        area,
                        authority,
                        level,
                        note,
                    }],
                    "cli",
                    false,
                )
                .await?;
            for r in added {
                println!("added rule {}", r.id);
            }
        }
        RulesCommand::Remove { id } => {
            let id = uuid::Uuid::parse_str(&id)
                .context("the rule id is a UUID, as `rathaus rules list` shows")?;
            app.delete_rule(id, "cli").await?;
            println!("removed rule {id}");
        }
        RulesCommand::Import { file, replace } => {
            let csv = app::read_limited(&file, MAX_IMPORT_BYTES)?;
            let n = app.import_rules_csv(&csv, "cli", replace).await?;
            println!("rules imported: {n}");
        }
    }
    Ok(())
}

async fn serve(config: Config) -> Result<()> {
    let started = std::time::Instant::now();
    // Registered before anything else: a SIGTERM that arrives while starting must end the
    // process gracefully, not by the signal's default action.
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let public_url = config.public_url_for(bound);
    let app = open_app(&config, public_url.clone()).await?;
    app.store()
        .meta_set(SERVED_URL_KEY, &public_url)
        .await
        .context("recording the public URL")?;
    let mut admin_token = config.admin_token.clone();
    let mut demo_accounts = None;
    let mut demo_fit_connect = None;
    if config.demo {
        app.seed_demo().await.context("seeding the demo failed")?;
        if admin_token.is_none() {
            admin_token = Some(demo_admin_token(&config.data_dir)?);
        }
        let secret = demo_secret(&config.data_dir, "demo-postfach-client-secret")?;
        demo_accounts = Some(
            app.seed_demo_accounts(&secret)
                .await
                .context("seeding the demo accounts failed")?,
        );
        let dec_file = config.data_dir.join("demo-fit-connect-decryption.jwk.json");
        let sig_file = config.data_dir.join("demo-fit-connect-signing.jwk.json");
        let fc = app
            .seed_demo_fit_connect(
                &secret,
                (&dec_file.to_string_lossy(), &sig_file.to_string_lossy()),
            )
            .await
            .context("seeding the demo FIT-Connect destinations failed")?;
        if let Some((dec, sig)) = &fc.new_private_jwks {
            write_secret(&dec_file, dec.as_bytes())?;
            write_secret(&sig_file, sig.as_bytes())?;
        }
        demo_fit_connect = Some(fc);
    }
    let reloader = app.spawn_reloader(Duration::from_secs(config.reload_interval_secs));
    // Without a relay, mails wait in the outbox (admins see them; the demo lists them).
    let mail_worker = match &config.smtp_url {
        Some(url) => {
            let mailer = mailer::Mailer::new(
                app.store().clone(),
                &mailer::MailerConfig {
                    smtp_url: url.clone(),
                    from: config.mail_from.clone(),
                    keep_sent_bodies: config.demo,
                    dkim: dkim_signer(&config)?,
                },
                app.mail_wake(),
            )
            .context("RATHAUS_SMTP_URL / RATHAUS_MAIL_FROM")?;
            Some(tokio::spawn(mailer.run()))
        }
        None => {
            tracing::info!("no SMTP relay configured (RATHAUS_SMTP_URL): mails stay in the outbox");
            None
        }
    };
    let logout_worker = {
        let http = backchannel_client()?;
        tokio::spawn(app.clone().run_logout_worker(move |uri, token| {
            let http = http.clone();
            async move {
                let res = http
                    .post(&uri)
                    .form(&[("logout_token", token)])
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", res.status()))
                }
            }
        }))
    };
    let set_signer = tokio::spawn(app.clone().run_set_signer());
    // Without clamd the ePoststelle accepts nothing: submissions wait, readiness says why.
    let scanner = match &config.clamd_url {
        Some(url) => Some(scanner::Clamd::new(
            scanner::ClamdUrl::parse(url).context("RATHAUS_CLAMD_URL")?,
            scanner::Timeouts::default(),
        )),
        None => {
            tracing::warn!(
                "no virus scanner configured (RATHAUS_CLAMD_URL): the ePoststelle accepts nothing"
            );
            None
        }
    };
    // `poststelle_worker = false`: another node runs it (or it is paused for maintenance);
    // submissions to platform-held destinations wait in the database meanwhile.
    let poststelle = if config.poststelle_worker {
        Some(tokio::spawn(app.clone().run_poststelle(scanner)))
    } else {
        tracing::info!(
            "the ePoststelle worker does not run on this node (RATHAUS_POSTSTELLE_WORKER=false)"
        );
        None
    };
    let zd_deadlines = tokio::spawn(app.clone().run_zd_deadlines());
    let receipt_delivery = tokio::spawn(app.clone().run_receipt_delivery());
    let journal_sequencer = tokio::spawn(app.clone().run_journal_sequencer());
    let callback_worker = {
        let http = backchannel_client()?;
        tokio::spawn(app.clone().run_callback_worker(move |req| {
            let http = http.clone();
            async move {
                let mut r = http
                    .post(&req.url)
                    .header("content-type", "application/json")
                    .body(req.body);
                for (name, value) in req.headers {
                    r = r.header(name, value);
                }
                let res = r.send().await.map_err(|e| e.to_string())?;
                if res.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", res.status()))
                }
            }
        }))
    };
    let web_config = web::WebConfig {
        admin_token: admin_token.clone(),
        demo: config.demo,
        operator_ars: config.operator_ars.clone(),
        routing_rate_limit: config.routing_rate_limit,
        token_rate_limit: config.token_rate_limit,
        trust_forwarded_for: config.trust_forwarded_for,
        request_timeout: Duration::from_secs(config.request_timeout_secs),
    };
    let router = web::router(app.clone(), web_config);
    if config.demo {
        let path = write_demo_json(
            &config.data_dir,
            &public_url,
            admin_token.as_deref().unwrap_or(""),
            demo_accounts.as_ref(),
            demo_fit_connect.as_ref(),
        )?;
        println!("Demo data: {}", path.display());
    }
    tracing::info!(
        listen = %bound,
        public_url = %public_url,
        ms = started.elapsed().as_millis() as u64,
        "Rathaus ready"
    );
    println!("Rathaus listens on http://{bound} (public URL {public_url})");

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve(listener, router, async move {
        let _ = rx.await;
    }));
    #[cfg(unix)]
    shutdown_signal(term).await;
    #[cfg(not(unix))]
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = tx.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "server error"),
        Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
        Err(_) => tracing::warn!(
            secs = grace.as_secs(),
            "requests still running after the grace period; stopping"
        ),
    }
    reloader.abort();
    // A notice cut off mid-send keeps its lease and is sent again after it runs out.
    logout_worker.abort();
    set_signer.abort();
    if let Some(worker) = poststelle {
        worker.abort();
    }
    zd_deadlines.abort();
    receipt_delivery.abort();
    journal_sequencer.abort();
    callback_worker.abort();
    if let Some(worker) = mail_worker {
        // A mail cut off mid-send keeps its lease and is sent again after the next start.
        worker.abort();
    }
    app.store().close().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() {
    let _ = tokio::signal::ctrl_c().await;
}

/// The demo's admin token, kept in the data dir so it survives restarts.
fn demo_admin_token(data_dir: &Path) -> Result<String> {
    demo_secret(data_dir, "admin-token")
}

/// The DKIM signer, if a key is configured; the domain defaults to the sender's.
fn dkim_signer(config: &Config) -> Result<Option<Arc<mailer::DkimSigner>>> {
    let Some(path) = &config.dkim_key_file else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the DKIM key {}", path.display()))?;
    let domain = match &config.dkim_domain {
        Some(d) => d.clone(),
        None => config
            .mail_from
            .rsplit('@')
            .next()
            .map(|d| d.trim_end_matches('>').trim().to_owned())
            .filter(|d| !d.is_empty())
            .context("set dkim_domain: mail_from has no domain")?,
    };
    let signer = mailer::DkimSigner::from_pem(&pem, &domain, &config.dkim_selector)
        .map_err(|e| anyhow::anyhow!("DKIM: {e}"))?;
    tracing::info!(domain, selector = %config.dkim_selector, "outgoing mail is DKIM-signed");
    Ok(Some(Arc::new(signer)))
}

/// A random secret kept in the data dir (mode 0600), the same at every start.
fn demo_secret(data_dir: &Path, name: &str) -> Result<String> {
    let path = data_dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_owned()),
        _ => {
            let token = crypto::random_token(32);
            write_secret(&path, token.as_bytes())?;
            Ok(token)
        }
    }
}

/// demo.json: what a tester needs to try the demo. Later features add their keys.
/// The HTTP client for back-channel logout: short timeouts (a slow relying party must not
/// hold the worker), no redirects (OIDC Back-Channel Logout § 2.5 posts to one URI).
fn backchannel_client() -> Result<reqwest::Client> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("rathaus/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client for back-channel logout")
}

fn write_demo_json(
    data_dir: &Path,
    base_url: &str,
    admin_token: &str,
    accounts: Option<&app::demo::DemoAccounts>,
    fit_connect: Option<&app::demo::DemoFitConnect>,
) -> Result<PathBuf> {
    let path = data_dir.join("demo.json");
    let areas: serde_json::Map<String, serde_json::Value> = app::demo::AREAS
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    // A struct, not a map, so that `base_url` comes first as testers expect.
    #[derive(serde::Serialize)]
    struct Demo<'a> {
        base_url: &'a str,
        areas: serde_json::Map<String, serde_json::Value>,
        admin_token: &'a str,
        #[serde(flatten)]
        accounts: Option<&'a app::demo::DemoAccounts>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fit_connect: Option<&'a app::demo::DemoFitConnect>,
        mails_url: String,
    }
    let doc = Demo {
        base_url,
        areas,
        admin_token,
        accounts,
        fit_connect,
        mails_url: format!("{base_url}/demo/mails"),
    };
    write_secret(&path, serde_json::to_string_pretty(&doc)?.as_bytes())?;
    Ok(path)
}
