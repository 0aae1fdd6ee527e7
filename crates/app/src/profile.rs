//! The profile that online services may prefill from, and the consents that let them.
//!
//! The profile is one JSON document per account, wrapped under the platform's
//! key-encryption key (associated data `profile:<account id>`, so a blob copied to another
//! account does not open). Each value says whether it is self-declared or verified, and by
//! what (e.g. `eID`). A value the user changes becomes self-declared: a verification
//! vouches for the value that was verified, not for the field.
//!
//! Attribute names are the OpenID Connect claim names; consents name scopes (`profile`,
//! `address`, `phone`, `email`, as in OpenID Connect) or single claims. [`App::prefill`]
//! hands a service only what the account consented to, and records that it did.

use std::collections::BTreeMap;

use store::ConsentRecord;
use time::OffsetDateTime;

use crate::accounts::{ClientInfo, Session};
use crate::{App, AppError, Result};

/// The profile's attributes, in the order forms show them.
pub const PROFILE_ATTRIBUTES: [&str; 8] = [
    "given_name",
    "family_name",
    "birthdate",
    "street_address",
    "postal_code",
    "locality",
    "country",
    "phone_number",
];

/// The scopes a service can ask consent for, and the claims each one covers. `email` is
/// the account's (verified) address, not a profile value.
pub const SCOPES: [(&str, &[&str]); 5] = [
    ("openid", &[]),
    ("profile", &["given_name", "family_name", "birthdate"]),
    (
        "address",
        &["street_address", "postal_code", "locality", "country"],
    ),
    ("phone", &["phone_number"]),
    ("email", &["email"]),
];

const NAME_MAX: usize = 100;
const STREET_MAX: usize = 200;
const PLACE_MAX: usize = 100;
const PHONE_MAX: usize = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueStatus {
    SelfDeclared,
    Verified,
}

/// One value of the profile.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileValue {
    pub value: String,
    pub status: ValueStatus,
    /// What verified it (e.g. `eID`), for verified values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    pub updated_at: String,
}

/// The whole profile as stored (inside the wrapping).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub attributes: BTreeMap<String, ProfileValue>,
}

impl Profile {
    pub fn get(&self, name: &str) -> Option<&ProfileValue> {
        self.attributes.get(name)
    }

    /// The value, or "" if not given.
    pub fn value(&self, name: &str) -> &str {
        self.get(name).map_or("", |v| v.value.as_str())
    }
}

/// The profile form as typed (date of birth in three parts, GOV.UK style).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct ProfileInput {
    pub given_name: String,
    pub family_name: String,
    pub birth_day: String,
    pub birth_month: String,
    pub birth_year: String,
    pub street_address: String,
    pub postal_code: String,
    pub locality: String,
    pub country: String,
    pub phone_number: String,
}

/// A problem with one field of the profile form: the field's name and a message code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileError {
    pub field: &'static str,
    pub code: &'static str,
}

fn text_ok(s: &str, max: usize) -> Option<&'static str> {
    if s.chars().count() > max {
        Some("profile_too_long")
    } else if s.chars().any(char::is_control) {
        Some("profile_invalid_characters")
    } else {
        None
    }
}

/// Whether a country as typed means Germany (an empty country does: a German platform).
pub fn is_germany(country: &str) -> bool {
    matches!(
        country.trim().to_lowercase().as_str(),
        "" | "de" | "deu" | "deutschland" | "germany" | "bundesrepublik deutschland"
    )
}

impl ProfileInput {
    /// The form filled with a stored profile.
    pub fn from_profile(p: &Profile) -> ProfileInput {
        let mut date = p.value("birthdate").splitn(3, '-');
        let (year, month, day) = (date.next(), date.next(), date.next());
        let part = |s: Option<&str>| s.map(|v| v.trim_start_matches('0').to_owned());
        ProfileInput {
            given_name: p.value("given_name").to_owned(),
            family_name: p.value("family_name").to_owned(),
            birth_day: part(day).unwrap_or_default(),
            birth_month: part(month).unwrap_or_default(),
            birth_year: year.unwrap_or("").to_owned(),
            street_address: p.value("street_address").to_owned(),
            postal_code: p.value("postal_code").to_owned(),
            locality: p.value("locality").to_owned(),
            country: p.value("country").to_owned(),
            phone_number: p.value("phone_number").to_owned(),
        }
    }

    /// Checks every field; returns the values to store by attribute name (empty fields are
    /// left out) or every problem found, in the order of the form.
    pub fn validate(
        &self,
        today: time::Date,
    ) -> Result<BTreeMap<&'static str, String>, Vec<ProfileError>> {
        let mut errors = Vec::new();
        let mut values = BTreeMap::new();
        let mut err = |field: &'static str, code: &'static str| {
            errors.push(ProfileError { field, code });
        };

        for (field, raw) in [
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
        ] {
            let v = raw.trim();
            match text_ok(v, NAME_MAX) {
                Some(code) => err(field, code),
                None if !v.is_empty() => {
                    values.insert(field, v.to_owned());
                }
                None => {}
            }
        }

        match birthdate(&self.birth_day, &self.birth_month, &self.birth_year, today) {
            Ok(Some(d)) => {
                values.insert("birthdate", d);
            }
            Ok(None) => {}
            Err(code) => err("birth_day", code),
        }

        let street = self.street_address.trim();
        let postcode = self.postal_code.trim();
        let city = self.locality.trim();
        let country = self.country.trim();
        let any_address = [street, postcode, city, country]
            .iter()
            .any(|s| !s.is_empty());
        for (field, v, max, missing) in [
            (
                "street_address",
                street,
                STREET_MAX,
                "profile_street_missing",
            ),
            ("postal_code", postcode, 10, "profile_postcode_missing"),
            ("locality", city, PLACE_MAX, "profile_city_missing"),
            ("country", country, PLACE_MAX, ""),
        ] {
            if let Some(code) = text_ok(v, max) {
                // A postcode that is too long is a wrong postcode.
                err(
                    field,
                    if field == "postal_code" {
                        "profile_postcode_invalid"
                    } else {
                        code
                    },
                );
                continue;
            }
            if v.is_empty() {
                if any_address && !missing.is_empty() {
                    err(field, missing);
                }
                continue;
            }
            if field == "postal_code" {
                let ok = if is_germany(country) {
                    v.len() == 5 && v.chars().all(|c| c.is_ascii_digit())
                } else {
                    v.len() >= 2
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
                };
                if !ok {
                    err(
                        field,
                        if is_germany(country) {
                            "profile_postcode_de"
                        } else {
                            "profile_postcode_invalid"
                        },
                    );
                    continue;
                }
            }
            values.insert(field, v.to_owned());
        }

        let phone = self.phone_number.trim();
        if !phone.is_empty() {
            let digits = phone.chars().filter(char::is_ascii_digit).count();
            let allowed = phone.chars().enumerate().all(|(i, c)| {
                c.is_ascii_digit()
                    || matches!(c, ' ' | '-' | '/' | '(' | ')')
                    || (c == '+' && i == 0)
            });
            if phone.chars().count() > PHONE_MAX || !allowed || !(5..=20).contains(&digits) {
                err("phone_number", "profile_phone_invalid");
            } else {
                values.insert("phone_number", phone.to_owned());
            }
        }

        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }
}

/// Day, month and year as typed → `YYYY-MM-DD`; `None` if all three are empty.
fn birthdate(
    day: &str,
    month: &str,
    year: &str,
    today: time::Date,
) -> Result<Option<String>, &'static str> {
    let (day, month, year) = (day.trim(), month.trim(), year.trim());
    if day.is_empty() && month.is_empty() && year.is_empty() {
        return Ok(None);
    }
    if day.is_empty() {
        return Err("profile_birthdate_day_missing");
    }
    if month.is_empty() {
        return Err("profile_birthdate_month_missing");
    }
    if year.is_empty() {
        return Err("profile_birthdate_year_missing");
    }
    let number = |s: &str, max_len: usize| -> Option<u16> {
        (s.len() <= max_len && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (Some(d), Some(m), Some(y)) = (number(day, 2), number(month, 2), number(year, 4)) else {
        return Err("profile_birthdate_invalid");
    };
    if year.len() != 4 {
        return Err("profile_birthdate_year_four_digits");
    }
    let date = time::Month::try_from(u8::try_from(m).unwrap_or(0))
        .ok()
        .and_then(|m| {
            time::Date::from_calendar_date(i32::from(y), m, u8::try_from(d).unwrap_or(0)).ok()
        })
        .ok_or("profile_birthdate_invalid")?;
    if date > today {
        return Err("profile_birthdate_future");
    }
    if y < 1900 {
        return Err("profile_birthdate_too_old");
    }
    Ok(Some(format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )))
}

/// A consent as listed in the account.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Consent {
    pub client_id: String,
    pub client_name: String,
    pub scopes: Vec<String>,
    pub granted_at: String,
}

impl From<ConsentRecord> for Consent {
    fn from(r: ConsentRecord) -> Self {
        Consent {
            scopes: r.scopes.split_whitespace().map(str::to_owned).collect(),
            client_id: r.client_id,
            client_name: r.client_name,
            granted_at: r.granted_at,
        }
    }
}

/// The claims a scope or claim name stands for; `None` if it is neither.
fn claims_of(scope: &str) -> Option<Vec<&'static str>> {
    if let Some((_, claims)) = SCOPES.iter().find(|(s, _)| *s == scope) {
        return Some(claims.to_vec());
    }
    // OpenID scopes that release no profile values (offline_access, trust_level,
    // organisation) can be consented to as well.
    if oidc::is_known_scope(scope) {
        return Some(Vec::new());
    }
    PROFILE_ATTRIBUTES
        .iter()
        .chain(std::iter::once(&"email"))
        .find(|a| **a == scope)
        .map(|a| vec![*a])
}

fn profile_aad(account_id: &str) -> Vec<u8> {
    format!("profile:{account_id}").into_bytes()
}

impl App {
    /// The account's profile (empty if none was saved).
    pub async fn profile(&self, account_id: &str) -> Result<Profile> {
        let Some(stored) = self.store.profile(account_id).await? else {
            return Ok(Profile::default());
        };
        let json = self.kek.unwrap(&profile_aad(account_id), &stored.wrapped)?;
        serde_json::from_slice(&json)
            .map_err(|e| AppError::Internal(format!("stored profile does not parse: {e}")))
    }

    async fn save_profile(&self, account_id: &str, profile: &Profile) -> Result<()> {
        let json = profile_json(profile)?;
        let wrapped = self.kek.wrap(&profile_aad(account_id), &json);
        self.store
            .put_profile(account_id, &wrapped, OffsetDateTime::now_utc())
            .await?;
        Ok(())
    }

    /// Saves the profile form. Changed values become self-declared; unchanged ones keep
    /// their verification; emptied ones are removed. Returns the attributes that changed.
    /// Errors: the first problem as `InvalidField` (the web layer shows all of them by
    /// calling [`ProfileInput::validate`] first).
    pub async fn update_profile(
        &self,
        session: &Session,
        input: &ProfileInput,
        client: &ClientInfo,
    ) -> Result<Vec<&'static str>> {
        let now = OffsetDateTime::now_utc();
        let values = input.validate(now.date()).map_err(|errors| {
            let first = errors.first().copied().unwrap_or(ProfileError {
                field: "given_name",
                code: "profile_invalid_characters",
            });
            AppError::InvalidField {
                field: first.field,
                message: first.code.into(),
            }
        })?;
        let mut profile = self.profile(&session.account_id).await?;
        let mut changed = Vec::new();
        for name in PROFILE_ATTRIBUTES {
            let old = profile.attributes.get(name);
            match values.get(name) {
                Some(v) if old.is_some_and(|o| o.value == *v) => {}
                Some(v) => {
                    profile.attributes.insert(
                        name.to_owned(),
                        ProfileValue {
                            value: v.clone(),
                            status: ValueStatus::SelfDeclared,
                            verified_by: None,
                            verified_at: None,
                            updated_at: store::ts(now),
                        },
                    );
                    changed.push(name);
                }
                None if old.is_some() => {
                    profile.attributes.remove(name);
                    changed.push(name);
                }
                None => {}
            }
        }
        if changed.is_empty() {
            return Ok(changed);
        }
        self.save_profile(&session.account_id, &profile).await?;
        self.event(
            Some(&session.account_id),
            "profile_changed",
            client,
            Some(&changed.join(",")),
        )
        .await?;
        Ok(changed)
    }

    /// Records values as verified by `by` (e.g. `eID` after an eID login). For identity
    /// providers and tests; nothing a user can type reaches this.
    pub async fn set_verified_attributes(
        &self,
        account_id: &str,
        values: &[(&str, &str)],
        by: &str,
    ) -> Result<()> {
        let now = store::ts(OffsetDateTime::now_utc());
        let mut profile = self.profile(account_id).await?;
        for (name, value) in values {
            if !PROFILE_ATTRIBUTES.contains(name) {
                return Err(AppError::Invalid(format!(
                    "unknown profile attribute {name}"
                )));
            }
            profile.attributes.insert(
                (*name).to_owned(),
                ProfileValue {
                    value: (*value).to_owned(),
                    status: ValueStatus::Verified,
                    verified_by: Some(by.to_owned()),
                    verified_at: Some(now.clone()),
                    updated_at: now.clone(),
                },
            );
        }
        self.save_profile(account_id, &profile).await?;
        self.store
            .add_security_event(
                Some(account_id),
                "profile_verified",
                None,
                None,
                Some(by),
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(())
    }

    /// Records the account's consent that an online service may read `scopes` (scope or
    /// claim names, see [`SCOPES`]); a second grant replaces the first.
    pub async fn grant_consent(
        &self,
        account_id: &str,
        client_id: &str,
        client_name: &str,
        scopes: &[&str],
    ) -> Result<()> {
        let client_id = client_id.trim();
        let client_name = client_name.trim();
        if client_id.is_empty() || client_id.len() > 200 {
            return Err(AppError::Invalid(
                "client_id must have 1 to 200 bytes".into(),
            ));
        }
        if client_name.is_empty()
            || client_name.chars().count() > 200
            || client_name.chars().any(char::is_control)
        {
            return Err(AppError::Invalid(
                "client_name must have 1 to 200 characters".into(),
            ));
        }
        let mut list: Vec<&str> = Vec::new();
        for s in scopes {
            if claims_of(s).is_none() {
                return Err(AppError::Invalid(format!("unknown scope {s}")));
            }
            if !list.contains(s) {
                list.push(s);
            }
        }
        self.store
            .put_consent(
                account_id,
                &ConsentRecord {
                    client_id: client_id.to_owned(),
                    client_name: client_name.to_owned(),
                    scopes: list.join(" "),
                    granted_at: store::ts(OffsetDateTime::now_utc()),
                },
            )
            .await?;
        self.store
            .add_security_event(
                Some(account_id),
                "consent_granted",
                None,
                None,
                Some(&format!("{client_name} ({})", list.join(" "))),
                OffsetDateTime::now_utc(),
            )
            .await?;
        Ok(())
    }

    /// The account's consents, by service name.
    pub async fn consents(&self, account_id: &str) -> Result<Vec<Consent>> {
        Ok(self
            .store
            .consents(account_id)
            .await?
            .into_iter()
            .map(Consent::from)
            .collect())
    }

    /// Withdraws a consent. False if there was none.
    pub async fn revoke_consent(&self, account_id: &str, client_id: &str) -> Result<bool> {
        self.revoke_consent_from(account_id, client_id, &ClientInfo::default())
            .await
    }

    /// [`App::revoke_consent`], recording who asked (the account page).
    pub async fn revoke_consent_from(
        &self,
        account_id: &str,
        client_id: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let Some(gone) = self.store.delete_consent(account_id, client_id).await? else {
            return Ok(false);
        };
        // Withdrawn consent ends the service's standing access too.
        self.store
            .revoke_refresh_of_client(account_id, client_id, OffsetDateTime::now_utc())
            .await?;
        self.event(
            Some(account_id),
            "consent_revoked",
            client,
            Some(&gone.client_name),
        )
        .await?;
        Ok(true)
    }

    /// The profile values an online service may prefill: of the `requested` scope or claim
    /// names, those the account consented to, as
    /// `{"<claim>": {"value", "status", "verified_by"?}}` (claims without a value are left
    /// out). `None` without any consent for this service. Every answer that hands out
    /// values is recorded in the account's activity.
    pub async fn prefill(
        &self,
        account_id: &str,
        client_id: &str,
        requested: &[&str],
    ) -> Result<Option<serde_json::Value>> {
        let Some(consent) = self.store.consent(account_id, client_id).await? else {
            return Ok(None);
        };
        let consented: Vec<&str> = consent
            .scopes
            .split_whitespace()
            .filter_map(claims_of)
            .flatten()
            .collect();
        let wanted: Vec<&str> = requested
            .iter()
            .filter_map(|r| claims_of(r))
            .flatten()
            .filter(|c| consented.contains(c))
            .collect();
        let mut out = serde_json::Map::new();
        if wanted.is_empty() {
            return Ok(Some(serde_json::Value::Object(out)));
        }
        let profile = self.profile(account_id).await?;
        for claim in &wanted {
            if out.contains_key(*claim) {
                continue;
            }
            if *claim == "email" {
                if let Some(a) = self.store.account_by_id(account_id).await?
                    && a.email_verified_at.is_some()
                {
                    out.insert(
                        "email".into(),
                        serde_json::json!({"value": a.email, "status": "verified", "verified_by": "email"}),
                    );
                }
                continue;
            }
            if let Some(v) = profile.get(claim) {
                let mut entry = serde_json::json!({"value": v.value, "status": v.status});
                if let Some(by) = &v.verified_by {
                    entry["verified_by"] = serde_json::Value::String(by.clone());
                }
                out.insert((*claim).to_owned(), entry);
            }
        }
        if !out.is_empty() {
            let names: Vec<&str> = out.keys().map(String::as_str).collect();
            self.store
                .add_security_event(
                    Some(account_id),
                    "profile_shared",
                    None,
                    None,
                    Some(&format!("{}: {}", consent.client_name, names.join(","))),
                    OffsetDateTime::now_utc(),
                )
                .await?;
        }
        Ok(Some(serde_json::Value::Object(out)))
    }

    /// The profile (decrypted) for the data export.
    pub(crate) async fn export_profile(&self, account_id: &str) -> Result<serde_json::Value> {
        let profile = self.profile(account_id).await?;
        Ok(serde_json::to_value(profile.attributes).unwrap_or_default())
    }

    /// The consents for the data export.
    pub(crate) async fn export_consents(&self, account_id: &str) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(self.consents(account_id).await?).unwrap_or_default())
    }
}

fn profile_json(profile: &Profile) -> Result<Vec<u8>> {
    serde_json::to_vec(profile).map_err(|e| AppError::Internal(format!("profile: {e}")))
}
