//! Application services: the use cases that combine storage, crypto and the pure directory
//! logic. Both the web layer and the CLI call these; neither talks to the store directly.
//!
//! The [`App`] holds the live [`Directory`] snapshot. Every change is written to the
//! database first and then reloaded from it, so a snapshot is always something the database
//! held; other nodes notice the change through the directory generation and reload too.

mod accounts;
mod data_schemas;
pub mod demo;
pub mod email_intake;
mod error;
mod journal_log;
pub mod mails;
pub mod oauth;
mod oidc;
mod organisations;
mod passkeys;
mod postfach;
pub mod poststelle;
mod profile;
pub mod receipt_delivery;
mod rules;
mod signing;
mod ttl_cache;
pub mod zustelldienst;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use crypto::{Kek, RsaSigningKey};
use domain::Ars;
use store::{AreaImportSummary, Store, StoredKey};
use tokio::sync::Mutex;
use verzeichnis::{AuthorityDetails, Directory, gebiete};

pub use accounts::{
    AccountSettings, ClientInfo, LoginOutcome, SecondFactorOutcome, Session, SessionSummary,
    TotpSetup, normalize_email,
};
pub use data_schemas::RegisteredSchema;
pub use error::AppError;
pub use oauth::{ApiClient, OAuthError, SCOPE_POSTFACH_DELIVER, TokenGrant};
pub use oidc::{
    AuthenticatedClient, AuthorizeStep, ClientCredentials, ConsentRequest, DEFAULT_KEY_OVERLAP,
    IdTokenHint, TokenResponse,
};
pub use organisations::{
    INVITATION_TTL, InvitationInfo, InvitationState, Membership, OrgRole, Organisation,
    OrganisationMember, OrganisationView, PendingInvitation, validate_organisation_name,
};
pub use passkeys::{PasskeyChallenge, PasskeyLoginOutcome, PasskeySummary};
pub use postfach::{
    MessageView, NewMessage, PostfachSettings, StoredAttachment, clean_filename, clean_media_type,
};
pub use profile::{
    Consent, PROFILE_ATTRIBUTES, Profile, ProfileError, ProfileInput, ProfileValue, SCOPES,
    ValueStatus, is_germany,
};
pub use rules::RuleInput;

/// The bundled reference data (see `data/README.md` for sources and licences).
pub mod bundled {
    pub const GEBIETE: &[u8] = include_bytes!("../../../data/niedersachsen-gebiete-2017.csv");
    pub const LEIKA: &[u8] = include_bytes!("../../../data/leika-sample.csv");
    /// The demo's Fachdaten schema for Wohnsitz anmelden (registered with the ePoststelle).
    pub const DEMO_WOHNSITZ_SCHEMA: &[u8] =
        include_bytes!("../../../data/fachdaten-wohnsitz-anmeldung-1.0.schema.json");
}

const ROUTING_KEY_PURPOSE: &str = "routing";

/// What the application needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The public base URL without trailing slash, e.g. `http://localhost:8080`.
    pub public_url: String,
    pub accounts: AccountSettings,
    pub postfach: PostfachSettings,
    /// Where files (Postfach attachments) are kept; `None`: a temporary directory that lives
    /// as long as the [`App`] (tests).
    pub blob_dir: Option<std::path::PathBuf>,
    pub zustelldienst: zustelldienst::ZustelldienstSettings,
    /// The ePoststelle's e-mail channel (addresses, DKIM/SPF/DMARC checks).
    pub email: email_intake::EmailSettings,
}

impl Settings {
    /// The defaults for a deployment at `public_url`.
    pub fn new(public_url: impl Into<String>) -> Settings {
        let public_url: String = public_url.into();
        // The e-mail domain defaults to the public URL's host.
        let host = public_url
            .split_once("://")
            .map(|(_, rest)| rest)
            .unwrap_or(&public_url)
            .split(['/', ':'])
            .next()
            .unwrap_or("localhost")
            .to_owned();
        Settings {
            email: email_intake::EmailSettings::new(host),
            public_url,
            accounts: AccountSettings::default(),
            postfach: PostfachSettings::default(),
            blob_dir: None,
            zustelldienst: zustelldienst::ZustelldienstSettings::default(),
        }
    }
}

pub struct App {
    store: Store,
    settings: Settings,
    directory: ArcSwap<Directory>,
    routing_keys: Vec<Arc<RsaSigningKey>>,
    jwks: Arc<[u8]>,
    /// Serialises re-signing, so that two changes in a row do not sign the same twice.
    signing: Mutex<()>,
    kek: Kek,
    hasher: servicekonto::password::PasswordHasher,
    /// Wakes the mail worker when a mail was queued.
    mail_wake: Arc<tokio::sync::Notify>,
    blobs: blobs::Blobs,
    /// Keeps the temporary blob directory alive (when no `blob_dir` is configured).
    _blob_tmp: Option<tempfile::TempDir>,
    /// The WebAuthn relying party (passkeys); `None` if the public URL has no host name.
    webauthn: Option<webauthn_rs::Webauthn>,
    /// The OpenID provider's keys.
    oidc: oidc::OidcState,
    /// Wakes the back-channel logout worker when a notice was queued.
    logout_wake: Arc<tokio::sync::Notify>,
    /// Signs the admin pages' session cookie.
    admin_mac: crypto::MacKey,
    /// The journal's signing key and sequencer state.
    journal: journal_log::JournalState,
    /// When the last intake request came (the SET signer yields to senders).
    zd_activity: zustelldienst::Activity,
    /// Destinations read in the last two seconds (the intake path reads one per request).
    zd_destinations:
        ttl_cache::TtlCache<Arc<(store::DestinationRecord, ::zustelldienst::Destination)>>,
    /// Wakes the SET signer when events were written unsigned.
    signer_wake: Arc<tokio::sync::Notify>,
    /// Wakes the callback worker when a callback was queued.
    callback_wake: Arc<tokio::sync::Notify>,
    /// Wakes the ePoststelle worker when a submission was submitted.
    poststelle_wake: Arc<tokio::sync::Notify>,
    /// Wakes the receipt delivery when the ePoststelle recorded a decision.
    receipt_wake: Arc<tokio::sync::Notify>,
    /// What the ePoststelle worker last found (scanner reachable or not), for readiness.
    poststelle: poststelle::Health,
    /// The ePoststelle's parsed destination keys.
    poststelle_keys: poststelle::KeyCache,
    /// Compiled data schemas (the registry's bodies never change).
    schema_cache: data_schemas::SchemaCache,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("public_url", &self.settings.public_url)
            .finish_non_exhaustive()
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl App {
    /// Opens the application on a migrated store: loads (or on first start creates) the
    /// platform's routing signing key, loads the directory, and brings the destination
    /// signatures up to date if an earlier run stopped before signing.
    pub async fn open(store: Store, kek: Kek, settings: Settings) -> Result<Arc<App>> {
        let routing_keys =
            load_or_create_keys(&store, &kek, ROUTING_KEY_PURPOSE, &settings).await?;
        let hasher = servicekonto::password::PasswordHasher::new(
            settings.accounts.argon2,
            settings.accounts.hash_concurrency,
        );
        let (blobs, blob_tmp) = match &settings.blob_dir {
            Some(dir) => (blobs::Blobs::local(dir), None),
            None => {
                let tmp = tempfile::tempdir()
                    .map_err(|e| AppError::Internal(format!("temporary blob directory: {e}")))?;
                (blobs::Blobs::local(tmp.path()), Some(tmp))
            }
        };
        let blobs = blobs.map_err(|e| AppError::Config(format!("blob storage: {e}")))?;
        let jwks = serde_json::json!({
            "keys": routing_keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()
        });
        let webauthn = passkeys::relying_party(&settings.public_url);
        let oidc = oidc::OidcState::open(&store, &kek).await?;
        let journal = journal_log::JournalState::open(&store, &kek).await?;
        let admin_mac = kek.derive_mac("admin-pages/session");
        let app = Arc::new(App {
            admin_mac,
            journal,
            zd_activity: zustelldienst::Activity::default(),
            zd_destinations: ttl_cache::TtlCache::new(std::time::Duration::from_secs(2), 10_000),
            signer_wake: Arc::new(tokio::sync::Notify::new()),
            callback_wake: Arc::new(tokio::sync::Notify::new()),
            poststelle_wake: Arc::new(tokio::sync::Notify::new()),
            receipt_wake: Arc::new(tokio::sync::Notify::new()),
            poststelle: poststelle::Health::default(),
            poststelle_keys: poststelle::KeyCache::default(),
            schema_cache: data_schemas::SchemaCache::default(),
            oidc,
            logout_wake: Arc::new(tokio::sync::Notify::new()),
            directory: ArcSwap::from_pointee(load_directory(&store, &settings.public_url).await?),
            store,
            settings,
            jwks: serde_json::to_vec(&jwks).unwrap_or_default().into(),
            routing_keys,
            signing: Mutex::new(()),
            kek,
            hasher,
            mail_wake: Arc::new(tokio::sync::Notify::new()),
            webauthn,
            blobs,
            _blob_tmp: blob_tmp,
        });
        app.resign().await?;
        Ok(app)
    }

    /// The admin pages' session cookie value: valid until `expires` (Unix seconds) and only
    /// while the admin token stays the same (changing the token signs every admin out).
    pub fn admin_session_value(&self, admin_token: &str, expires: i64) -> String {
        let tag = self.admin_mac.mac_b64(
            format!("{expires}\n{}", crypto::sha256_hex(admin_token.as_bytes())).as_bytes(),
        );
        format!("{expires}.{tag}")
    }

    /// Checks a value made by [`App::admin_session_value`].
    pub fn admin_session_valid(&self, admin_token: &str, value: &str) -> bool {
        let Some((exp, _)) = value.split_once('.') else {
            return false;
        };
        let Ok(expires) = exp.parse::<i64>() else {
            return false;
        };
        expires > time::OffsetDateTime::now_utc().unix_timestamp()
            && crypto::constant_time_eq(
                self.admin_session_value(admin_token, expires).as_bytes(),
                value.as_bytes(),
            )
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Notified whenever a mail is queued; the mail worker waits on it.
    pub fn mail_wake(&self) -> Arc<tokio::sync::Notify> {
        self.mail_wake.clone()
    }

    /// The current snapshot. Cheap: one atomic load.
    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.directory.load()
    }

    /// The JWKS document of the routing signature keys, serialised once.
    pub fn jwks_json(&self) -> Arc<[u8]> {
        self.jwks.clone()
    }

    /// Reloads the directory if the database holds a newer generation. Returns whether it did.
    pub async fn reload_if_changed(&self) -> Result<bool> {
        let generation = self.store.generation().await?;
        if generation == self.directory.load().generation {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    async fn reload(&self) -> Result<()> {
        self.directory.store(Arc::new(
            load_directory(&self.store, &self.settings.public_url).await?,
        ));
        Ok(())
    }

    /// Polls for changes made by other nodes (or the CLI) every `interval`.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(app) = app.upgrade() else { break };
                if let Err(e) = app.reload_if_changed().await {
                    tracing::warn!(error = %e, "directory reload failed; serving the previous snapshot");
                }
            }
        })
    }

    /// Imports a Gemeindeverzeichnis CSV; see [`gebiete::plan`] for what changes.
    pub async fn import_areas(
        &self,
        csv: &[u8],
        source_name: &str,
        successors: Option<&[u8]>,
    ) -> Result<AreaImportSummary> {
        let rows = gebiete::parse(csv)?;
        let successors = successors
            .map(gebiete::parse_successors)
            .transpose()?
            .unwrap_or_default();
        let existing = self.store.load_authorities().await?;
        let plan = gebiete::plan(&existing, &rows, &successors);
        let summary = self
            .store
            .apply_area_import(&plan, source_name, &crypto::sha256_hex(csv))
            .await?;
        self.after_change().await?;
        Ok(summary)
    }

    /// Imports a Leistungskatalog CSV. Returns (inserted, renamed).
    pub async fn import_services(&self, csv: &[u8]) -> Result<(usize, usize)> {
        let services = verzeichnis::catalogue::parse(csv)?;
        let counts = self.store.upsert_services(&services, false).await?;
        self.after_change().await?;
        Ok(counts)
    }

    pub async fn update_authority_details(
        &self,
        ars: &Ars,
        details: &AuthorityDetails,
        actor: &str,
    ) -> Result<()> {
        self.store
            .update_authority_details(ars, details, actor)
            .await?;
        self.reload().await
    }

    /// After any directory write: reload, then re-sign what changed (which reloads again).
    async fn after_change(&self) -> Result<()> {
        self.reload().await?;
        self.resign().await?;
        Ok(())
    }
}

async fn load_directory(store: &Store, public_url: &str) -> Result<Directory> {
    // The generation is read first: a change that lands while we read makes the snapshot
    // look older than it is, so the next poll reloads again rather than missing it.
    let generation = store.generation().await?;
    let mut dir = Directory::build(
        store.load_authorities().await?,
        store.load_services().await?,
        store.load_rules().await?,
        store.load_destinations().await?,
        generation,
    );
    dir.prepare_routes(public_url);
    Ok(dir)
}

/// Installs an existing key as the routing signing key (key import by an operator; tests).
pub async fn install_routing_key(store: &Store, kek: &Kek, key: &RsaSigningKey) -> Result<()> {
    let aad = format!("rathaus:signing-key:{ROUTING_KEY_PURPOSE}");
    let record = StoredKey {
        kid: key.kid().to_owned(),
        wrapped_pkcs8: kek.wrap(aad.as_bytes(), &key.pkcs8_der()),
        cert_der: key.cert_der().to_vec(),
    };
    store
        .insert_signing_key(ROUTING_KEY_PURPOSE, &record)
        .await?;
    Ok(())
}

async fn load_or_create_keys(
    store: &Store,
    kek: &Kek,
    purpose: &str,
    settings: &Settings,
) -> Result<Vec<Arc<RsaSigningKey>>> {
    let aad = format!("rathaus:signing-key:{purpose}");
    let stored = store.signing_keys(purpose).await?;
    if stored.is_empty() {
        let cn = format!("Rathaus {purpose} signing key ({})", settings.public_url);
        // RSA-4096 generation takes a second or two: keep it off the async workers.
        let key = tokio::task::spawn_blocking(move || RsaSigningKey::generate(&cn))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        install_routing_key(store, kek, &key).await?;
        tracing::info!(kid = key.kid(), purpose, "created signing key");
        return Ok(vec![Arc::new(key)]);
    }
    stored
        .iter()
        .map(|k| {
            let pkcs8 = kek.unwrap(aad.as_bytes(), &k.wrapped_pkcs8).map_err(|_| {
                AppError::Config(format!(
                    "the key-encryption key cannot open the stored {purpose} key {}: every node \
                     must use the same RATHAUS_KEY_ENCRYPTION_KEY (or the same data dir's kek file)",
                    k.kid
                ))
            })?;
            Ok(Arc::new(RsaSigningKey::from_der(&pkcs8, &k.cert_der)?))
        })
        .collect()
}

/// Reads a file, with a limit, for the importers.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| AppError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    if meta.len() > limit {
        return Err(AppError::Invalid(format!(
            "{} is {} bytes; the limit is {limit}",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read(path)
        .map_err(|e| AppError::Invalid(format!("cannot read {}: {e}", path.display())))
}
