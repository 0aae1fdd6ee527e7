//! Servicekonto use cases: registration, e-mail verification, login with password and
//! second factor, sessions, password reset and change, TOTP, e-mail change, export and
//! deletion, and the account's security events ("Kontoaktivität").
//!
//! Rules kept here: responses never tell whether an address has an account (login,
//! registration and reset answer alike, and a login for an unknown address costs one
//! Argon2id computation too); failed logins block the address and the client address with
//! growing delays, shared by all nodes through the database; every mail is rate limited per
//! recipient and purpose; every security-relevant change is recorded as an event.

use std::time::Duration;

use domain::{AuthMethod, TrustLevel};
use servicekonto::password::{Argon2Params, PasswordHasher, PasswordPolicy, Verified};
use servicekonto::throttle::LoginThrottle;
use servicekonto::totp::{self, TotpSecret};
use store::{AccountRecord, NewAccount, NewMail, SecurityEvent, SessionRecord};
use time::OffsetDateTime;

use crate::mails::{self, MailLang, MailText};
use crate::{App, AppError, Result};

/// How accounts and sessions behave; defaults are what we recommend.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub argon2: Argon2Params,
    /// Argon2id computations at the same time (each takes `argon2.memory_kib` of memory).
    pub hash_concurrency: usize,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// The window after a login in which sensitive changes need no new password.
    pub recent_auth: Duration,
    pub verify_link_ttl: Duration,
    pub reset_link_ttl: Duration,
    /// Mails per recipient and purpose within [`MAIL_WINDOW`].
    pub mails_per_window: i64,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            argon2: Argon2Params::default(),
            hash_concurrency: servicekonto::password::default_concurrency(),
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 3600),
            recent_auth: Duration::from_secs(10 * 60),
            verify_link_ttl: Duration::from_secs(24 * 3600),
            reset_link_ttl: Duration::from_secs(3600),
            mails_per_window: 3,
        }
    }
}

const MAIL_WINDOW: time::Duration = time::Duration::minutes(15);
/// A password was checked, the second factor is outstanding: this long to enter it.
const SECOND_FACTOR_WINDOW: time::Duration = time::Duration::minutes(10);
pub(crate) const THROTTLE_MEMORY: time::Duration = time::Duration::hours(24);

/// Who is asking: recorded with security events, used for per-client throttling.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub(crate) fn ua(&self) -> Option<String> {
        self.user_agent
            .as_ref()
            .map(|u| u.chars().take(300).collect())
    }
}

/// A live session, as handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub public_id: String,
    pub account_id: String,
    pub email: String,
    pub lang: String,
    pub postfach_ref: String,
    /// False while the second factor is outstanding: such a session may only finish login.
    pub complete: bool,
    pub trust_level: TrustLevel,
    pub methods: Vec<AuthMethod>,
    pub authenticated_at: OffsetDateTime,
    pub idle_expires_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub totp_enabled: bool,
}

impl Session {
    /// Whether the login is recent enough for a sensitive change without asking again.
    pub fn recently_authenticated(&self, window: Duration) -> bool {
        OffsetDateTime::now_utc() - self.authenticated_at
            <= time::Duration::try_from(window).unwrap_or(time::Duration::ZERO)
    }
}

#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: set this session token.
    LoggedIn { token: String },
    /// Password right; now the second factor (the token is a partial session).
    SecondFactor { token: String },
    /// Wrong address or password (which of the two is never said).
    Failed,
    /// Too many failures: try again after this many seconds.
    Throttled { retry_after_secs: u64 },
    /// Password right, address not yet confirmed: a new link was sent.
    Unverified,
}

#[derive(Debug)]
pub enum SecondFactorOutcome {
    LoggedIn {
        token: String,
    },
    Failed,
    Throttled {
        retry_after_secs: u64,
    },
    /// The partial session ran out; start again.
    Expired,
}

/// TOTP setup in progress: the secret travels wrapped in the form, so nothing is stored
/// until the user proves with a code that their app has it.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    pub secret_base32: String,
    pub otpauth_uri: String,
    /// The secret wrapped under the KEK for this account (base64url), for the form.
    pub pending: String,
}

/// A session row as listed in the account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionSummary {
    pub public_id: String,
    pub created_at: String,
    pub last_seen_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub trust_level: i64,
    pub methods: String,
    pub current: bool,
}

/// Normalises an e-mail address for storage and lookup: trimmed, lower case. Refuses what
/// cannot be an address, with a message for the form.
pub fn normalize_email(input: &str) -> Result<String> {
    let e = input.trim().to_lowercase();
    let invalid = || AppError::InvalidField {
        field: "email",
        message: "email_invalid".into(),
    };
    if e.is_empty() {
        return Err(AppError::InvalidField {
            field: "email",
            message: "email_missing".into(),
        });
    }
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let Some((local, domain)) = e.rsplit_once('@') else {
        return Err(invalid());
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
        || domain.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '"', '\\'])
    {
        return Err(invalid());
    }
    Ok(e)
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim())
        .ok()
}

fn parse_ts(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn dur(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::ZERO)
}

fn methods_text(methods: &[AuthMethod]) -> String {
    methods
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn email_key(email: &str) -> String {
    format!("email:{}", crypto::sha256_hex(email.as_bytes()))
}

pub(crate) fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

fn totp_aad(account_id: &str) -> Vec<u8> {
    format!("totp-secret:{account_id}").into_bytes()
}

fn pending_totp_aad(account_id: &str) -> Vec<u8> {
    format!("totp-pending:{account_id}").into_bytes()
}

/// The throttle for one address; clients (which may be a shared NAT) get more room.
const ACCOUNT_THROTTLE: LoginThrottle = LoginThrottle {
    free_failures: 5,
    base_delay_secs: 1,
    max_delay_secs: 900,
};
pub(crate) const CLIENT_THROTTLE: LoginThrottle = LoginThrottle {
    free_failures: 20,
    base_delay_secs: 1,
    max_delay_secs: 900,
};

impl App {
    pub fn account_settings(&self) -> &AccountSettings {
        &self.settings.accounts
    }

    pub fn password_hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Queues a mail unless this recipient already got `mails_per_window` of this purpose
    /// lately (then it is silently dropped: the caller's answer must not differ).
    pub(crate) async fn send_mail(&self, to: &str, purpose: &str, text: MailText) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        let recent = self
            .store
            .count_mails_since(to, purpose, now - MAIL_WINDOW)
            .await?;
        if recent >= self.settings.accounts.mails_per_window {
            tracing::info!(purpose, "mail rate limit reached for a recipient; not sent");
            return Ok(false);
        }
        self.store
            .enqueue_mail(
                &NewMail {
                    recipient: to,
                    subject: &text.subject,
                    body_text: &text.body,
                    purpose,
                },
                now,
            )
            .await?;
        self.mail_wake.notify_one();
        Ok(true)
    }

    pub(crate) async fn event(
        &self,
        account_id: Option<&str>,
        kind: &str,
        client: &ClientInfo,
        detail: Option<&str>,
    ) -> Result<()> {
        self.store
            .add_security_event(
                account_id,
                kind,
                client.ip.as_deref(),
                client.ua().as_deref(),
                detail,
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(())
    }

    fn check_password(&self, password: &str, email: &str) -> Result<()> {
        let local = email.split('@').next().unwrap_or("");
        PasswordPolicy::default()
            .check(password, &[email, local])
            .map_err(|p| AppError::InvalidField {
                field: "password",
                message: p.code().into(),
            })
    }

    async fn issue_token(
        &self,
        account_id: &str,
        purpose: &str,
        new_email: Option<&str>,
        ttl: Duration,
    ) -> Result<String> {
        let (token, hash) = servicekonto::token::new_token();
        let now = OffsetDateTime::now_utc();
        self.store
            .insert_account_token(&hash, account_id, purpose, new_email, now + dur(ttl), now)
            .await?;
        Ok(token)
    }

    fn link(&self, path: &str, token: &str, lang: MailLang) -> String {
        format!(
            "{}{path}?token={token}&lang={}",
            self.settings.public_url,
            lang.code()
        )
    }

    async fn send_verification(&self, account: &AccountRecord) -> Result<()> {
        let ttl = self.settings.accounts.verify_link_ttl;
        let token = self.issue_token(&account.id, "verify", None, ttl).await?;
        let lang = MailLang::parse(&account.lang);
        let text = mails::verify_email(
            lang,
            &self.link("/konto/bestaetigen", &token, lang),
            (ttl.as_secs() / 3600) as i64,
        );
        self.send_mail(&account.email, "verify", text).await?;
        Ok(())
    }

    /// Registers an account and mails a verification link. If the address has an account
    /// already, its owner gets a note instead; the answer is the same.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        lang: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let email = normalize_email(email)?;
        self.check_password(password, &email)?;
        let lang = MailLang::parse(lang);
        if let Some(existing) = self.store.account_by_email(&email).await? {
            let text = mails::account_exists(
                MailLang::parse(&existing.lang),
                &format!("{}/konto/anmelden", self.settings.public_url),
                &format!("{}/konto/passwort-vergessen", self.settings.public_url),
            );
            self.send_mail(&email, "account_exists", text).await?;
            // Costs about what creating an account costs, so timing tells nothing either.
            let _ = self.hasher.hash(password.to_owned()).await;
            return Ok(());
        }
        let hash = self
            .hasher
            .hash(password.to_owned())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let id = uuid::Uuid::new_v4().to_string();
        let postfach_ref = uuid::Uuid::new_v4().simple().to_string();
        match self
            .store
            .create_account(
                &NewAccount {
                    id: &id,
                    email: &email,
                    password_hash: &hash,
                    lang: lang.code(),
                    postfach_ref: &postfach_ref,
                },
                OffsetDateTime::now_utc(),
            )
            .await
        {
            Ok(()) => {}
            // Registered a moment ago by a concurrent request: same answer as above.
            Err(store::StoreError::Conflict(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        self.event(Some(&id), "registered", client, None).await?;
        if let Some(account) = self.store.account_by_id(&id).await? {
            self.send_verification(&account).await?;
        }
        Ok(())
    }

    /// Confirms an address with the link's token. False if the link is unknown, used or old.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        let hash = servicekonto::token::token_hash(token);
        let Some((account_id, _)) = self
            .store
            .consume_account_token(&hash, "verify", now)
            .await?
        else {
            return Ok(false);
        };
        self.store.set_email_verified(&account_id, now).await?;
        self.event(Some(&account_id), "email_verified", client, None)
            .await?;
        Ok(true)
    }

    async fn throttled(&self, email: &str, client: &ClientInfo) -> Result<Option<u64>> {
        let now = OffsetDateTime::now_utc();
        let mut keys = vec![email_key(email)];
        if let Some(ip) = &client.ip {
            keys.push(ip_key(ip));
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .store
            .throttle_blocked_until(&refs, now)
            .await?
            .map(|until| {
                let secs = (parse_ts(&until) - now).whole_seconds().max(1);
                u64::try_from(secs).unwrap_or(1)
            }))
    }

    async fn record_failure(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let account = |n| dur(ACCOUNT_THROTTLE.delay_after(n));
        self.store
            .throttle_failure(&email_key(email), now, THROTTLE_MEMORY, account)
            .await?;
        if let Some(ip) = &client.ip {
            let per_client = |n| dur(CLIENT_THROTTLE.delay_after(n));
            self.store
                .throttle_failure(&ip_key(ip), now, THROTTLE_MEMORY, per_client)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn new_session(
        &self,
        account_id: &str,
        stage: &str,
        methods: &[AuthMethod],
        client: &ClientInfo,
    ) -> Result<String> {
        self.new_session_logged(account_id, stage, methods, client, None)
            .await
    }

    /// A new session, and with it (in the same transaction) the security event `login` with
    /// `detail`, if given.
    pub(crate) async fn new_session_logged(
        &self,
        account_id: &str,
        stage: &str,
        methods: &[AuthMethod],
        client: &ClientInfo,
        login_detail: Option<&str>,
    ) -> Result<String> {
        let now = OffsetDateTime::now_utc();
        let (token, hash) = servicekonto::token::new_token();
        let s = &self.settings.accounts;
        let (idle, absolute) = if stage == "active" {
            (now + dur(s.session_idle), now + dur(s.session_absolute))
        } else {
            (now + SECOND_FACTOR_WINDOW, now + SECOND_FACTOR_WINDOW)
        };
        let record = SessionRecord {
            public_id: uuid::Uuid::new_v4().simple().to_string(),
            account_id: account_id.into(),
            stage: stage.into(),
            trust_level: i64::from(TrustLevel::Level1.as_u8()),
            auth_methods: methods_text(methods),
            created_at: store::ts(now),
            authenticated_at: store::ts(now),
            last_seen_at: store::ts(now),
            idle_expires_at: store::ts(idle),
            expires_at: store::ts(absolute),
            ip: client.ip.clone(),
            user_agent: client.ua(),
        };
        match login_detail {
            Some(detail) => {
                self.store
                    .create_session_with_event(&hash, &record, "login", Some(detail))
                    .await?
            }
            None => self.store.create_session(&hash, &record).await?,
        }

        Ok(token)
    }

    /// Login with address and password.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let Ok(email) = normalize_email(email) else {
            return Ok(LoginOutcome::Failed);
        };
        if let Some(retry_after_secs) = self.throttled(&email, client).await? {
            return Ok(LoginOutcome::Throttled { retry_after_secs });
        }
        let account = self.store.account_by_email(&email).await?;
        let verified = self
            .hasher
            .verify(
                password.to_owned(),
                account.as_ref().and_then(|a| a.password_hash.clone()),
            )
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let (account, needs_rehash) = match (account, verified) {
            (Some(a), Verified::Yes { needs_rehash }) => (a, needs_rehash),
            (account, _) => {
                self.record_failure(&email, client).await?;
                if let Some(a) = &account {
                    self.event(Some(&a.id), "login_failed", client, None)
                        .await?;
                }
                return Ok(LoginOutcome::Failed);
            }
        };
        if needs_rehash && let Ok(hash) = self.hasher.hash(password.to_owned()).await {
            self.store
                .set_password_hash(&account.id, &hash, OffsetDateTime::now_utc())
                .await?;
        }
        // With a second factor the failures are forgiven only when it is right too: else
        // whoever knows the password could reset the count between guesses at the code.
        if account.totp_secret.is_none() {
            self.store.throttle_clear(&email_key(&email)).await?;
        }
        if account.email_verified_at.is_none() {
            self.send_verification(&account).await?;
            return Ok(LoginOutcome::Unverified);
        }
        if account.totp_secret.is_some() {
            let token = self
                .new_session(
                    &account.id,
                    "second_factor",
                    &[AuthMethod::Password],
                    client,
                )
                .await?;
            return Ok(LoginOutcome::SecondFactor { token });
        }
        let token = self
            .new_session_logged(
                &account.id,
                "active",
                &[AuthMethod::Password],
                client,
                Some("pwd"),
            )
            .await?;
        Ok(LoginOutcome::LoggedIn { token })
    }

    /// The second step of a login: a TOTP code or a recovery code. On success the session
    /// gets a new token (the partial one is dead).
    pub async fn login_second_factor(
        &self,
        token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<SecondFactorOutcome> {
        let now = OffsetDateTime::now_utc();
        let hash = servicekonto::token::token_hash(token);
        let Some(session) = self.store.session(&hash, now).await? else {
            return Ok(SecondFactorOutcome::Expired);
        };
        if session.stage != "second_factor" {
            return Ok(SecondFactorOutcome::Expired);
        }
        let Some(account) = self.store.account_by_id(&session.account_id).await? else {
            return Ok(SecondFactorOutcome::Expired);
        };
        if let Some(retry_after_secs) = self.throttled(&account.email, client).await? {
            return Ok(SecondFactorOutcome::Throttled { retry_after_secs });
        }
        let Some(method) = self.check_second_factor(&account, code).await? else {
            self.record_failure(&account.email, client).await?;
            self.event(Some(&account.id), "second_factor_failed", client, None)
                .await?;
            return Ok(SecondFactorOutcome::Failed);
        };
        let (new_token, new_hash) = servicekonto::token::new_token();
        let methods = [AuthMethod::Password, method];
        let rotated = self
            .store
            .rotate_session(
                &hash,
                &new_hash,
                "active",
                i64::from(TrustLevel::Level1.as_u8()),
                &methods_text(&methods),
                now,
                now + dur(self.settings.accounts.session_idle),
            )
            .await?;
        if !rotated {
            return Ok(SecondFactorOutcome::Expired);
        }
        // The partial session had a short absolute lifetime; the full one gets the normal one.
        self.store
            .set_session_expiry(
                &new_hash,
                now + dur(self.settings.accounts.session_absolute),
            )
            .await?;
        self.store
            .throttle_clear(&email_key(&account.email))
            .await?;
        self.event(
            Some(&account.id),
            "login",
            client,
            Some(&methods_text(&methods)),
        )
        .await?;
        if method == AuthMethod::RecoveryCode {
            let left = self.store.unused_recovery_codes(&account.id).await?;
            self.event(
                Some(&account.id),
                "recovery_code_used",
                client,
                Some(&format!("{left} left")),
            )
            .await?;
        }
        Ok(SecondFactorOutcome::LoggedIn { token: new_token })
    }

    async fn check_second_factor(
        &self,
        account: &AccountRecord,
        code: &str,
    ) -> Result<Option<AuthMethod>> {
        let Some(wrapped) = &account.totp_secret else {
            return Ok(None);
        };
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
            let raw = self.kek.unwrap(&totp_aad(&account.id), wrapped)?;
            let secret = TotpSecret::from_bytes(&raw)
                .map_err(|_| AppError::Internal("stored TOTP secret is invalid".into()))?;
            let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
            let last = account.totp_last_step.map(|s| s.max(0) as u64);
            if let Some(step) = totp::verify(&secret, &digits, now, last)
                && self
                    .store
                    .use_totp_step(&account.id, i64::try_from(step).unwrap_or(i64::MAX))
                    .await?
            {
                return Ok(Some(AuthMethod::Totp));
            }
            return Ok(None);
        }
        let normalized = totp::normalize_recovery_code(code);
        if normalized.len() >= 10
            && self
                .store
                .use_recovery_code(
                    &account.id,
                    &totp::hash_recovery_code(&normalized),
                    OffsetDateTime::now_utc(),
                )
                .await?
        {
            return Ok(Some(AuthMethod::RecoveryCode));
        }
        Ok(None)
    }

    /// The session for a cookie token, with its idle timeout extended. `None` if there is
    /// no live session.
    pub async fn session(&self, token: &str) -> Result<Option<Session>> {
        if token.len() != 43 {
            return Ok(None);
        }
        let now = OffsetDateTime::now_utc();
        let hash = servicekonto::token::token_hash(token);
        let Some(record) = self.store.session(&hash, now).await? else {
            return Ok(None);
        };
        let Some(account) = self.store.account_by_id(&record.account_id).await? else {
            return Ok(None);
        };
        let complete = record.stage == "active";
        let mut idle_expires_at = parse_ts(&record.idle_expires_at);
        // Touch at most once a minute: a page view should not always be a write.
        if complete && now - parse_ts(&record.last_seen_at) > time::Duration::minutes(1) {
            idle_expires_at = now + dur(self.settings.accounts.session_idle);
            self.store
                .touch_session(&hash, now, idle_expires_at)
                .await?;
        }
        Ok(Some(Session {
            token_hash: hash,
            public_id: record.public_id,
            account_id: account.id,
            email: account.email,
            lang: account.lang,
            postfach_ref: account.postfach_ref,
            complete,
            trust_level: u8::try_from(record.trust_level)
                .ok()
                .and_then(TrustLevel::from_u8)
                .unwrap_or(TrustLevel::Level1),
            methods: record
                .auth_methods
                .split(',')
                .filter_map(|m| m.parse().ok())
                .collect(),
            authenticated_at: parse_ts(&record.authenticated_at),
            idle_expires_at,
            expires_at: parse_ts(&record.expires_at),
            totp_enabled: account.totp_secret.is_some(),
        }))
    }

    /// Extends the idle timeout now (the "stay signed in" button of the timeout warning).
    pub async fn extend_session(&self, session: &Session) -> Result<OffsetDateTime> {
        let now = OffsetDateTime::now_utc();
        let until = (now + dur(self.settings.accounts.session_idle)).min(session.expires_at);
        self.store
            .touch_session(&session.token_hash, now, until)
            .await?;
        Ok(until)
    }

    /// Ends the session; services it signed in to are told (see [`App::session_ended`]).
    pub async fn logout(&self, session: &Session, client: &ClientInfo) -> Result<()> {
        self.end_session_everywhere(session, client)
            .await
            .map(|_| ())
    }

    /// [`App::logout`], returning the front-channel logout URIs of the services the session
    /// signed in to (the logout page loads them).
    pub async fn end_session_everywhere(
        &self,
        session: &Session,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        self.store
            .revoke_session_by_token(&session.token_hash, OffsetDateTime::now_utc())
            .await?;
        self.event(Some(&session.account_id), "logout", client, None)
            .await?;
        self.session_ended(&session.public_id).await
    }

    /// Mails a reset link if the address has an account; the answer is the same either way.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let email = normalize_email(email)?;
        let Some(account) = self.store.account_by_email(&email).await? else {
            return Ok(());
        };
        let ttl = self.settings.accounts.reset_link_ttl;
        let token = self.issue_token(&account.id, "reset", None, ttl).await?;
        let lang = MailLang::parse(&account.lang);
        let text = mails::password_reset(
            lang,
            &self.link("/konto/passwort-neu", &token, lang),
            (ttl.as_secs() / 60) as i64,
        );
        if self.send_mail(&account.email, "reset", text).await? {
            self.event(Some(&account.id), "password_reset_requested", client, None)
                .await?;
        }
        Ok(())
    }

    pub async fn reset_token_valid(&self, token: &str) -> Result<bool> {
        Ok(self
            .store
            .account_token_valid(
                &servicekonto::token::token_hash(token),
                "reset",
                OffsetDateTime::now_utc(),
            )
            .await?)
    }

    /// Sets a new password with a reset link. All sessions end; the address counts as
    /// confirmed (the link reached it).
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = OffsetDateTime::now_utc();
        let hash = servicekonto::token::token_hash(token);
        if !self.store.account_token_valid(&hash, "reset", now).await? {
            return Err(AppError::Invalid("reset_link_invalid".into()));
        }
        // Check the policy before using up the link, so a refused password can be retried.
        let account_id = self
            .store
            .account_token_owner(&hash)
            .await?
            .ok_or_else(|| AppError::Invalid("reset_link_invalid".into()))?;
        let account = self
            .store
            .account_by_id(&account_id)
            .await?
            .ok_or_else(|| AppError::Invalid("reset_link_invalid".into()))?;
        self.check_password(new_password, &account.email)?;
        if self
            .store
            .consume_account_token(&hash, "reset", now)
            .await?
            .is_none()
        {
            return Err(AppError::Invalid("reset_link_invalid".into()));
        }
        let new_hash = self
            .hasher
            .hash(new_password.to_owned())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .set_password_hash(&account.id, &new_hash, now)
            .await?;
        self.store.set_email_verified(&account.id, now).await?;
        self.store
            .revoke_account_tokens(&account.id, &["reset"], now)
            .await?;
        self.store
            .revoke_other_sessions(&account.id, None, now)
            .await?;
        self.store
            .throttle_clear(&email_key(&account.email))
            .await?;
        self.event(Some(&account.id), "password_reset", client, None)
            .await?;
        let text = mails::security_notice(MailLang::parse(&account.lang), "password");
        self.send_mail(&account.email, "security_notice", text)
            .await?;
        Ok(())
    }

    /// Checks the password again for a sensitive change. Throttled like a login: a stolen
    /// session must not become a way to guess the password without limit.
    async fn reconfirm_password(
        &self,
        account: &AccountRecord,
        password: &str,
        field: &'static str,
        client: &ClientInfo,
    ) -> Result<()> {
        if let Some(secs) = self.throttled(&account.email, client).await? {
            return Err(AppError::InvalidField {
                field,
                message: format!("throttled:{secs}"),
            });
        }
        let ok = self
            .hasher
            .verify(password.to_owned(), account.password_hash.clone())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        if matches!(ok, Verified::Yes { .. }) {
            return Ok(());
        }
        self.record_failure(&account.email, client).await?;
        self.event(Some(&account.id), "password_check_failed", client, None)
            .await?;
        Err(AppError::InvalidField {
            field,
            message: "password_wrong".into(),
        })
    }

    /// Changes the password of a logged-in account; the other sessions end.
    pub async fn change_password(
        &self,
        session: &Session,
        current: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let account = self.account(&session.account_id).await?;
        self.reconfirm_password(&account, current, "current_password", client)
            .await?;
        self.check_password(new_password, &account.email)?;
        let now = OffsetDateTime::now_utc();
        let hash = self
            .hasher
            .hash(new_password.to_owned())
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.store
            .set_password_hash(&account.id, &hash, now)
            .await?;
        self.store
            .revoke_account_tokens(&account.id, &["reset"], now)
            .await?;
        self.store
            .revoke_other_sessions(&account.id, Some(&session.public_id), now)
            .await?;
        self.event(Some(&account.id), "password_changed", client, None)
            .await?;
        let text = mails::security_notice(MailLang::parse(&account.lang), "password");
        self.send_mail(&account.email, "security_notice", text)
            .await?;
        Ok(())
    }

    async fn account(&self, id: &str) -> Result<AccountRecord> {
        self.store
            .account_by_id(id)
            .await?
            .ok_or_else(|| AppError::NotFound("account".into()))
    }

    /// Starts TOTP setup: a new secret, shown once, wrapped for the confirmation form.
    pub fn totp_begin(&self, session: &Session) -> TotpSetup {
        let secret = TotpSecret::generate();
        let wrapped = self
            .kek
            .wrap(&pending_totp_aad(&session.account_id), secret.as_bytes());
        TotpSetup {
            secret_base32: secret.to_base32(),
            otpauth_uri: totp::otpauth_uri(&secret, "Rathaus Servicekonto", &session.email),
            pending: b64(&wrapped),
        }
    }

    /// The setup view for a pending secret from the form (to show the same secret again
    /// after a wrong code). `None` if it is not a pending secret of this account.
    pub fn totp_pending_view(&self, session: &Session, pending: &str) -> Option<TotpSetup> {
        let wrapped = unb64(pending)?;
        let raw = self
            .kek
            .unwrap(&pending_totp_aad(&session.account_id), &wrapped)
            .ok()?;
        let secret = TotpSecret::from_bytes(&raw).ok()?;
        Some(TotpSetup {
            secret_base32: secret.to_base32(),
            otpauth_uri: totp::otpauth_uri(&secret, "Rathaus Servicekonto", &session.email),
            pending: pending.to_owned(),
        })
    }

    /// Finishes TOTP setup with a code from the app; returns the recovery codes (shown once).
    pub async fn totp_confirm(
        &self,
        session: &Session,
        pending: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        let invalid_setup = || AppError::Invalid("totp_setup_invalid".into());
        let wrapped = unb64(pending).ok_or_else(invalid_setup)?;
        let raw = self
            .kek
            .unwrap(&pending_totp_aad(&session.account_id), &wrapped)
            .map_err(|_| invalid_setup())?;
        let secret = TotpSecret::from_bytes(&raw).map_err(|_| invalid_setup())?;
        let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let Some(step) = totp::verify(&secret, &digits, now, None) else {
            return Err(AppError::InvalidField {
                field: "code",
                message: "code_wrong".into(),
            });
        };
        let codes = totp::generate_recovery_codes(10);
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| totp::hash_recovery_code(&totp::normalize_recovery_code(c)))
            .collect();
        let stored = self
            .kek
            .wrap(&totp_aad(&session.account_id), secret.as_bytes());
        let now_t = OffsetDateTime::now_utc();
        self.store
            .set_totp(&session.account_id, Some(&stored), &hashes, now_t)
            .await?;
        // The code just shown must not log in a second time.
        self.store
            .use_totp_step(&session.account_id, i64::try_from(step).unwrap_or(i64::MAX))
            .await?;
        self.event(Some(&session.account_id), "totp_enabled", client, None)
            .await?;
        Ok(codes)
    }

    pub async fn totp_disable(&self, session: &Session, client: &ClientInfo) -> Result<()> {
        let account = self.account(&session.account_id).await?;
        self.store
            .set_totp(&account.id, None, &[], OffsetDateTime::now_utc())
            .await?;
        self.event(Some(&account.id), "totp_disabled", client, None)
            .await?;
        let text = mails::security_notice(MailLang::parse(&account.lang), "second factor off");
        self.send_mail(&account.email, "security_notice", text)
            .await?;
        Ok(())
    }

    /// Mails a confirmation link to the new address; the address changes when it is used.
    pub async fn request_email_change(
        &self,
        session: &Session,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let new_email = normalize_email(new_email)?;
        if new_email == session.email {
            return Err(AppError::InvalidField {
                field: "email",
                message: "email_unchanged".into(),
            });
        }
        // Whether the new address is taken shows only when the link is used, by its owner.
        let ttl = self.settings.accounts.verify_link_ttl;
        let token = self
            .issue_token(&session.account_id, "email_change", Some(&new_email), ttl)
            .await?;
        let lang = MailLang::parse(&session.lang);
        let text = mails::email_change(
            lang,
            &self.link("/konto/email-bestaetigen", &token, lang),
            (ttl.as_secs() / 3600) as i64,
        );
        self.send_mail(&new_email, "email_change", text).await?;
        self.event(
            Some(&session.account_id),
            "email_change_requested",
            client,
            None,
        )
        .await
    }

    /// Uses an e-mail change link. `Ok(false)` if the link is invalid.
    pub async fn confirm_email_change(&self, token: &str, client: &ClientInfo) -> Result<bool> {
        let now = OffsetDateTime::now_utc();
        let hash = servicekonto::token::token_hash(token);
        let Some((account_id, Some(new_email))) = self
            .store
            .consume_account_token(&hash, "email_change", now)
            .await?
        else {
            return Ok(false);
        };
        let account = self.account(&account_id).await?;
        match self.store.set_email(&account_id, &new_email, now).await {
            Ok(()) => {}
            Err(store::StoreError::Conflict(_)) => {
                return Err(AppError::Conflict("email_taken".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.store
            .revoke_account_tokens(&account_id, &["reset", "verify", "email_change"], now)
            .await?;
        self.event(Some(&account_id), "email_changed", client, None)
            .await?;
        let text = mails::security_notice(MailLang::parse(&account.lang), "e-mail address");
        self.send_mail(&account.email, "security_notice", text)
            .await?;
        Ok(true)
    }

    pub async fn list_sessions(&self, session: &Session) -> Result<Vec<SessionSummary>> {
        let rows = self
            .store
            .list_sessions(&session.account_id, OffsetDateTime::now_utc())
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.stage == "active")
            .map(|r| SessionSummary {
                current: r.public_id == session.public_id,
                public_id: r.public_id,
                created_at: r.created_at,
                last_seen_at: r.last_seen_at,
                ip: r.ip,
                user_agent: r.user_agent,
                trust_level: r.trust_level,
                methods: r.auth_methods,
            })
            .collect())
    }

    pub async fn revoke_session(
        &self,
        session: &Session,
        public_id: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let done = self
            .store
            .revoke_session(&session.account_id, public_id, OffsetDateTime::now_utc())
            .await?;
        if done {
            self.event(Some(&session.account_id), "session_revoked", client, None)
                .await?;
            self.session_ended(public_id).await?;
        }
        Ok(done)
    }

    pub async fn security_events(&self, session: &Session) -> Result<Vec<SecurityEvent>> {
        Ok(self.store.security_events(&session.account_id, 50).await?)
    }

    pub async fn set_account_lang(&self, session: &Session, lang: &str) -> Result<()> {
        Ok(self
            .store
            .set_lang(&session.account_id, MailLang::parse(lang).code())
            .await?)
    }

    /// Everything stored about the account, as JSON (DSGVO Art. 15 and 20). Secrets are
    /// named, not exported: a TOTP secret or password hash is of no use to its owner and a
    /// risk in a downloaded file.
    pub async fn export_account(
        &self,
        session: &Session,
        client: &ClientInfo,
    ) -> Result<serde_json::Value> {
        let account = self.account(&session.account_id).await?;
        let sessions = self.list_sessions(session).await?;
        let passkeys = self.list_passkeys(session).await?;
        let events = self
            .store
            .security_events(&session.account_id, 10_000)
            .await?;
        self.event(Some(&account.id), "data_exported", client, None)
            .await?;
        Ok(serde_json::json!({
            "format": "rathaus-servicekonto-export/1",
            "exported_at": store::ts(OffsetDateTime::now_utc()),
            "account": {
                "id": account.id,
                "email": account.email,
                "email_verified_at": account.email_verified_at,
                "language": account.lang,
                "postfach_ref": account.postfach_ref,
                "created_at": account.created_at,
                "password": account.password_hash.is_some().then_some("set (stored as an Argon2id hash, not exported)"),
                "totp": account.totp_secret.is_some().then_some("enabled (secret not exported)"),
            },
            "sessions": sessions,
            "passkeys": passkeys,
            "security_events": events,
            "profile": self.export_profile(&account.id).await?,
            "consents": self.export_consents(&account.id).await?,
            "organisations": self.export_organisations(&account.id).await?,
        }))
    }

    /// Deletes the account after checking the password again.
    pub async fn delete_account(
        &self,
        session: &Session,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let account = self.account(&session.account_id).await?;
        self.reconfirm_password(&account, password, "password", client)
            .await?;
        // An organisation must not be left without an owner: the last owner hands over first
        // (or is its only member, and the organisation goes with the account).
        let mut alone_in = Vec::new();
        for m in self.store.memberships(&account.id).await? {
            if m.role != "owner" {
                continue;
            }
            let members = self.store.organisation_members(&m.organisation.id).await?;
            let owners = members.iter().filter(|x| x.role == "owner").count();
            if owners == 1 && members.len() > 1 {
                return Err(AppError::InvalidField {
                    field: "password",
                    message: "last_owner_of_organisation".into(),
                });
            }
            if members.len() == 1 {
                alone_in.push(m.organisation.id);
            }
        }
        for org in alone_in {
            self.store.delete_organisation(&org).await?;
        }
        self.store.delete_account(&account.id).await?;
        // Kept without the account (which is gone): that a deletion happened, not who it was.
        self.event(
            None,
            "account_deleted",
            client,
            Some(&crypto::sha256_hex(account.id.as_bytes())),
        )
        .await
    }

    /// The newest mails of the outbox (admin view, demo mail page).
    pub async fn outbox(&self, limit: i64) -> Result<Vec<store::OutboxMail>> {
        Ok(self.store.list_mails(limit).await?)
    }
}
