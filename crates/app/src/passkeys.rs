//! Passkeys (WebAuthn, through webauthn-rs): registration in the account, login without a
//! password (discoverable credentials), and the passkey as second factor after the
//! password; listing, renaming and removal.
//!
//! Decisions kept here:
//! - **Relying party:** the host of the public URL is the RP id, the public URL the only
//!   accepted origin. A public URL with an IP address cannot have passkeys (browsers refuse
//!   IP-address RP ids); then the passkey use cases answer with a configuration error.
//! - **Ceremony state** (challenge, expected credentials) travels with the client, wrapped
//!   under the key-encryption key: AES-GCM with associated data naming the ceremony and
//!   what it is bound to (the account and session for registration, the partial session for
//!   a second factor), valid for the authenticator timeout plus a minute. No table, no node
//!   affinity. A challenge answered once cannot log in again: a passkey is only accepted if
//!   it was not used since the challenge was issued (one atomic update), which also covers
//!   passkeys without a signature counter.
//! - **User verification** is required in every ceremony (PIN or biometrics on the device),
//!   as webauthn-rs' passkey flows enforce: a passkey login is a multi-factor login by
//!   itself, so a passwordless login asks for no further factor. Local accounts stay at
//!   trust level 1 however they log in.
//! - **Attestation** is not requested (`none`): any authenticator the user trusts is fine;
//!   we have no list of approved devices to check it against.
//! - **Discoverable credentials** (resident keys) are requested at registration, so that
//!   every registered passkey also works for the passwordless login.

use std::time::Duration;

use domain::{AuthMethod, TrustLevel};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use store::PasskeyRecord;
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder,
};

use crate::accounts::{CLIENT_THROTTLE, THROTTLE_MEMORY, b64, dur, email_key, unb64};
use crate::mails::{self, MailLang};
use crate::{App, AppError, ClientInfo, Result, SecondFactorOutcome, Session};

/// How long a started ceremony can be finished: the authenticator timeout we announce
/// (webauthn-rs' default, the WebAuthn recommendation of 5 minutes) and a minute for the
/// round trips.
const CEREMONY_TTL: Duration =
    Duration::from_secs(webauthn_rs::DEFAULT_AUTHENTICATOR_TIMEOUT.as_secs() + 60);
/// Passkeys per account: bounds the size of the second-factor challenge state.
const MAX_PASSKEYS: usize = 20;
const MAX_NAME_CHARS: usize = 64;

/// A started ceremony: what the browser needs, and the state it must send back.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeyChallenge {
    /// The argument for `navigator.credentials.create()` or `.get()`: `{"publicKey": …}`,
    /// binary values as base64url strings.
    pub options: serde_json::Value,
    /// The ceremony state, wrapped under the key-encryption key; opaque to the client.
    pub state: String,
}

/// A passkey as listed in the account.
#[derive(Debug, Clone, Serialize)]
pub struct PasskeySummary {
    /// The credential id (base64url): names the passkey in forms.
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Debug)]
pub enum PasskeyLoginOutcome {
    /// Logged in: set this session token.
    LoggedIn { token: String },
    /// Unknown passkey, wrong signature, or a challenge answered before.
    Failed,
    /// Too many failures from this client: try again after this many seconds.
    Throttled { retry_after_secs: u64 },
}

/// The sealed form of a ceremony state.
#[derive(Serialize, Deserialize)]
struct Sealed<S> {
    /// When the challenge was issued, in Unix microseconds.
    issued_us: i64,
    state: S,
}

/// The relying party for a deployment at `public_url`; `None` (with a warning) if that URL
/// cannot be one, e.g. because its host is an IP address.
pub(crate) fn relying_party(public_url: &str) -> Option<Webauthn> {
    let origin = Url::parse(public_url).ok()?;
    let Some(rp_id) = origin.domain().map(str::to_owned) else {
        tracing::warn!(
            public_url,
            "passkeys are off: the public URL has no host name (browsers refuse IP addresses)"
        );
        return None;
    };
    match WebauthnBuilder::new(&rp_id, &origin).and_then(|b| b.rp_name("Rathaus").build()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(public_url, error = %e, "passkeys are off: no relying party for this URL");
            None
        }
    }
}

fn unix_us(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

fn ceremony_failed() -> AppError {
    AppError::Invalid("passkey_failed".into())
}

fn ceremony_expired() -> AppError {
    AppError::Invalid("passkey_expired".into())
}

/// The name for the list: trimmed, without control characters, at most 64 characters.
fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_NAME_CHARS)
        .collect()
}

fn parse_passkey(record: &PasskeyRecord) -> Result<Passkey> {
    serde_json::from_str(&record.passkey_json)
        .map_err(|e| AppError::Internal(format!("stored passkey does not parse: {e}")))
}

fn summary(r: PasskeyRecord) -> PasskeySummary {
    PasskeySummary {
        id: r.credential_id,
        name: r.name,
        created_at: r.created_at,
        last_used_at: r.last_used_at,
    }
}

impl App {
    fn relying(&self) -> Result<&Webauthn> {
        self.webauthn.as_ref().ok_or_else(|| {
            AppError::Config(
                "passkeys need a public URL with a host name (browsers refuse IP addresses)".into(),
            )
        })
    }

    fn ceremony_aad(purpose: &str, binding: &str) -> Vec<u8> {
        format!("passkey-ceremony:{purpose}:{binding}").into_bytes()
    }

    fn seal<S: Serialize>(&self, purpose: &str, binding: &str, state: &S) -> Result<String> {
        let sealed = Sealed {
            issued_us: unix_us(OffsetDateTime::now_utc()),
            state,
        };
        let json = serde_json::to_vec(&sealed)
            .map_err(|e| AppError::Internal(format!("ceremony state: {e}")))?;
        Ok(b64(&self
            .kek
            .wrap(&Self::ceremony_aad(purpose, binding), &json)))
    }

    /// The state sealed by [`App::seal`] for the same purpose and binding, and when its
    /// challenge was issued. `passkey_expired` if it is not ours, not for this, or too old.
    fn unseal<S: DeserializeOwned>(
        &self,
        purpose: &str,
        binding: &str,
        sealed: &str,
    ) -> Result<(S, OffsetDateTime)> {
        let wrapped = unb64(sealed).ok_or_else(ceremony_expired)?;
        let json = self
            .kek
            .unwrap(&Self::ceremony_aad(purpose, binding), &wrapped)
            .map_err(|_| ceremony_expired())?;
        let sealed: Sealed<S> = serde_json::from_slice(&json).map_err(|_| ceremony_expired())?;
        let issued = OffsetDateTime::from_unix_timestamp_nanos(i128::from(sealed.issued_us) * 1000)
            .map_err(|_| ceremony_expired())?;
        let age = OffsetDateTime::now_utc() - issued;
        // A minute of slack for clocks of other nodes that issued the challenge.
        if age < -time::Duration::minutes(1) || age > dur(CEREMONY_TTL) {
            return Err(ceremony_expired());
        }
        Ok((sealed.state, issued))
    }

    /// Whether the account has a passkey (the login can offer it as second factor).
    pub async fn has_passkeys(&self, account_id: &str) -> Result<bool> {
        Ok(self.store.count_passkeys(account_id).await? > 0)
    }

    pub async fn list_passkeys(&self, session: &Session) -> Result<Vec<PasskeySummary>> {
        Ok(self
            .store
            .passkeys_of(&session.account_id)
            .await?
            .into_iter()
            .map(summary)
            .collect())
    }

    /// Starts adding a passkey to the logged-in account. The caller makes sure the login is
    /// recent (a new way into the account is a sensitive change).
    pub async fn passkey_registration_begin(&self, session: &Session) -> Result<PasskeyChallenge> {
        let webauthn = self.relying()?;
        if !session.complete {
            return Err(ceremony_failed());
        }
        let existing = self.store.passkeys_of(&session.account_id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(AppError::Invalid("passkey_limit".into()));
        }
        let exclude = existing
            .iter()
            .map(|r| parse_passkey(r).map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let user = Uuid::parse_str(&session.account_id)
            .map_err(|_| AppError::Internal("account id is not a UUID".into()))?;
        let (ccr, registration) = webauthn
            .start_passkey_registration(user, &session.email, &session.email, Some(exclude))
            .map_err(|e| AppError::Internal(format!("passkey registration: {e}")))?;
        let mut options = serde_json::to_value(&ccr)
            .map_err(|e| AppError::Internal(format!("passkey options: {e}")))?;
        // Discoverable, so that the passkey also logs in without a password. (webauthn-rs
        // asks for none and does not check either way; browsers treat "preferred" alike.)
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        Ok(PasskeyChallenge {
            options,
            state: self.seal(
                "register",
                &format!("{}:{}", session.account_id, session.public_id),
                &registration,
            )?,
        })
    }

    /// Finishes adding a passkey with the browser's answer (`PublicKeyCredential` as JSON).
    pub async fn passkey_registration_finish(
        &self,
        session: &Session,
        state: &str,
        credential: serde_json::Value,
        name: &str,
        client: &ClientInfo,
    ) -> Result<PasskeySummary> {
        let webauthn = self.relying()?;
        if !session.complete {
            return Err(ceremony_failed());
        }
        let (registration, _): (PasskeyRegistration, _) = self.unseal(
            "register",
            &format!("{}:{}", session.account_id, session.public_id),
            state,
        )?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| ceremony_failed())?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &registration)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                ceremony_failed()
            })?;
        let count = self.store.count_passkeys(&session.account_id).await?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_PASSKEYS {
            return Err(AppError::Invalid("passkey_limit".into()));
        }
        let mut name = clean_name(name);
        if name.is_empty() {
            name = format!("Passkey {}", count + 1);
        }
        let id = b64(passkey.cred_id());
        let json = serde_json::to_string(&passkey)
            .map_err(|e| AppError::Internal(format!("passkey: {e}")))?;
        match self
            .store
            .insert_passkey(
                &id,
                &session.account_id,
                &name,
                &json,
                OffsetDateTime::now_utc(),
            )
            .await
        {
            Ok(()) => {}
            Err(store::StoreError::Conflict(_)) => {
                return Err(AppError::Invalid("passkey_exists".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.event(
            Some(&session.account_id),
            "passkey_added",
            client,
            Some(&name),
        )
        .await?;
        let text = mails::security_notice(MailLang::parse(&session.lang), "passkey added");
        self.send_mail(&session.email, "security_notice", text)
            .await?;
        let record = self
            .store
            .passkey(&id)
            .await?
            .ok_or_else(|| AppError::Internal("passkey vanished".into()))?;
        Ok(summary(record))
    }

    pub async fn rename_passkey(
        &self,
        session: &Session,
        id: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let name = clean_name(name);
        if name.is_empty() {
            return Err(AppError::InvalidField {
                field: "name",
                message: "passkey_name_missing".into(),
            });
        }
        let done = self
            .store
            .rename_passkey(&session.account_id, id, &name)
            .await?;
        if done {
            self.event(
                Some(&session.account_id),
                "passkey_renamed",
                client,
                Some(&name),
            )
            .await?;
        }
        Ok(done)
    }

    /// Removes one of the account's passkeys. False if it has no such passkey.
    pub async fn remove_passkey(
        &self,
        session: &Session,
        id: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let Some(name) = self.store.delete_passkey(&session.account_id, id).await? else {
            return Ok(false);
        };
        self.event(
            Some(&session.account_id),
            "passkey_removed",
            client,
            Some(&name),
        )
        .await?;
        let text = mails::security_notice(MailLang::parse(&session.lang), "passkey removed");
        self.send_mail(&session.email, "security_notice", text)
            .await?;
        Ok(true)
    }

    // ---- login ----

    async fn client_throttled(&self, client: &ClientInfo) -> Result<Option<u64>> {
        let Some(ip) = &client.ip else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let key = crate::accounts::ip_key(ip);
        Ok(self
            .store
            .throttle_blocked_until(&[key.as_str()], now)
            .await?
            .map(|until| {
                let until =
                    OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
                        .unwrap_or(now);
                u64::try_from((until - now).whole_seconds().max(1)).unwrap_or(1)
            }))
    }

    async fn client_failure(&self, client: &ClientInfo) -> Result<()> {
        if let Some(ip) = &client.ip {
            let block = |n| dur(CLIENT_THROTTLE.delay_after(n));
            self.store
                .throttle_failure(
                    &crate::accounts::ip_key(ip),
                    OffsetDateTime::now_utc(),
                    THROTTLE_MEMORY,
                    block,
                )
                .await?;
        }
        Ok(())
    }

    /// Records that `record` just authenticated with the challenge issued at `issued`:
    /// its new counter and flags, and the time. False if it was used since (a replay).
    async fn record_passkey_use(
        &self,
        record: &PasskeyRecord,
        mut passkey: Passkey,
        result: &AuthenticationResult,
        issued: OffsetDateTime,
    ) -> Result<bool> {
        passkey.update_credential(result);
        let json = serde_json::to_string(&passkey)
            .map_err(|e| AppError::Internal(format!("passkey: {e}")))?;
        Ok(self
            .store
            .use_passkey(
                &record.credential_id,
                &json,
                issued,
                OffsetDateTime::now_utc(),
            )
            .await?)
    }

    /// Starts a login without password: the browser offers the passkeys it has for us.
    pub fn passkey_login_begin(&self) -> Result<PasskeyChallenge> {
        let webauthn = self.relying()?;
        let (mut rcr, authentication) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| AppError::Internal(format!("passkey login: {e}")))?;
        // Started by a button, so the browser's ordinary dialog, not autofill (conditional).
        rcr.mediation = None;
        Ok(PasskeyChallenge {
            options: serde_json::to_value(&rcr)
                .map_err(|e| AppError::Internal(format!("passkey options: {e}")))?,
            state: self.seal("login", "", &authentication)?,
        })
    }

    /// Finishes a login without password. On success a full session with the method
    /// `passkey` begins (trust level 1, as every local account).
    pub async fn passkey_login_finish(
        &self,
        state: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> Result<PasskeyLoginOutcome> {
        let webauthn = self.relying()?;
        if let Some(retry_after_secs) = self.client_throttled(client).await? {
            return Ok(PasskeyLoginOutcome::Throttled { retry_after_secs });
        }
        let (authentication, issued): (DiscoverableAuthentication, _) =
            self.unseal("login", "", state)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| ceremony_failed())?;
        let found = match webauthn.identify_discoverable_authentication(&credential) {
            Ok((user, credential_id)) => self
                .store
                .passkey(&b64(credential_id))
                .await?
                .filter(|r| r.account_id == user.hyphenated().to_string()),
            Err(_) => None,
        };
        let Some(record) = found else {
            self.client_failure(client).await?;
            return Ok(PasskeyLoginOutcome::Failed);
        };
        let passkey = parse_passkey(&record)?;
        let result = match webauthn.finish_discoverable_authentication(
            &credential,
            authentication,
            &[DiscoverableKey::from(&passkey)],
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(error = %e, "passkey login refused");
                self.client_failure(client).await?;
                self.event(
                    Some(&record.account_id),
                    "login_failed",
                    client,
                    Some("passkey"),
                )
                .await?;
                return Ok(PasskeyLoginOutcome::Failed);
            }
        };
        if !self
            .record_passkey_use(&record, passkey, &result, issued)
            .await?
        {
            self.client_failure(client).await?;
            return Ok(PasskeyLoginOutcome::Failed);
        }
        let Some(account) = self.store.account_by_id(&record.account_id).await? else {
            return Ok(PasskeyLoginOutcome::Failed);
        };
        let token = self.new_passkey_session(&account.id, client).await?;
        self.event(Some(&account.id), "login", client, Some("passkey"))
            .await?;
        Ok(PasskeyLoginOutcome::LoggedIn { token })
    }

    async fn new_passkey_session(&self, account_id: &str, client: &ClientInfo) -> Result<String> {
        self.new_session(account_id, "active", &[AuthMethod::Passkey], client)
            .await
    }

    // ---- second factor ----

    /// Starts the passkey as second factor for a partial session (password checked, second
    /// factor outstanding). `None` if the session is not partial or its account has no
    /// passkey.
    pub async fn passkey_second_factor_begin(
        &self,
        session: &Session,
    ) -> Result<Option<PasskeyChallenge>> {
        let webauthn = self.relying()?;
        if session.complete {
            return Ok(None);
        }
        let passkeys = self
            .store
            .passkeys_of(&session.account_id)
            .await?
            .iter()
            .map(parse_passkey)
            .collect::<Result<Vec<_>>>()?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let (rcr, authentication) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|e| AppError::Internal(format!("passkey login: {e}")))?;
        Ok(Some(PasskeyChallenge {
            options: serde_json::to_value(&rcr)
                .map_err(|e| AppError::Internal(format!("passkey options: {e}")))?,
            state: self.seal("second-factor", &session.public_id, &authentication)?,
        }))
    }

    /// Finishes the second factor with a passkey. On success the session gets a new token
    /// and becomes full, with the methods password and passkey.
    pub async fn passkey_second_factor_finish(
        &self,
        session: &Session,
        state: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> Result<SecondFactorOutcome> {
        let webauthn = self.relying()?;
        if session.complete {
            return Ok(SecondFactorOutcome::Expired);
        }
        if let Some(retry_after_secs) = self.client_throttled(client).await? {
            return Ok(SecondFactorOutcome::Throttled { retry_after_secs });
        }
        let (authentication, issued): (PasskeyAuthentication, _) =
            self.unseal("second-factor", &session.public_id, state)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| ceremony_failed())?;
        let record = self
            .store
            .passkey(&b64(credential.get_credential_id()))
            .await?
            .filter(|r| r.account_id == session.account_id);
        let verified = match &record {
            Some(record) => {
                match webauthn.finish_passkey_authentication(&credential, &authentication) {
                    Ok(result) => {
                        self.record_passkey_use(record, parse_passkey(record)?, &result, issued)
                            .await?
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "passkey second factor refused");
                        false
                    }
                }
            }
            None => false,
        };
        if !verified {
            self.client_failure(client).await?;
            self.event(
                Some(&session.account_id),
                "second_factor_failed",
                client,
                Some("passkey"),
            )
            .await?;
            return Ok(SecondFactorOutcome::Failed);
        }
        let now = OffsetDateTime::now_utc();
        let (new_token, new_hash) = servicekonto::token::new_token();
        let methods = format!(
            "{},{}",
            AuthMethod::Password.as_str(),
            AuthMethod::Passkey.as_str()
        );
        let accounts = &self.settings.accounts;
        if !self
            .store
            .rotate_session(
                &session.token_hash,
                &new_hash,
                "active",
                i64::from(TrustLevel::Level1.as_u8()),
                &methods,
                now,
                now + dur(accounts.session_idle),
            )
            .await?
        {
            return Ok(SecondFactorOutcome::Expired);
        }
        // The partial session had a short absolute lifetime; the full one gets the normal one.
        self.store
            .set_session_expiry(&new_hash, now + dur(accounts.session_absolute))
            .await?;
        self.store
            .throttle_clear(&email_key(&session.email))
            .await?;
        self.event(Some(&session.account_id), "login", client, Some(&methods))
            .await?;
        Ok(SecondFactorOutcome::LoggedIn { token: new_token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Mein\u{0}  Laptop\n"), "Mein Laptop");
        assert_eq!(clean_name(&"x".repeat(100)).chars().count(), MAX_NAME_CHARS);
        assert_eq!(clean_name(" \t "), "");
    }

    #[test]
    fn relying_party_needs_a_host_name() {
        assert!(relying_party("http://localhost:8080").is_some());
        assert!(relying_party("https://rathaus.example").is_some());
        assert!(relying_party("http://10.0.0.5:80").is_none());
        assert!(relying_party("not a url").is_none());
    }
}
