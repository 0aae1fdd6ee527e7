//! Organisation accounts: a citizen creates an organisation and becomes its owner; owners
//! invite members by e-mail, change their role and their permission to use the
//! organisation's Postfach, and remove them; members leave. The organisation has its own
//! Postfach reference, which the Postfach authorises through [`App::postfach_refs_for`].
//!
//! Rules kept here: only members see an organisation (to anyone else it does not exist);
//! only owners change it; an organisation always keeps at least one owner (enforced in the
//! store, under a lock); an invitation is accepted once, before it expires, by the account
//! whose e-mail address it was sent to.

use store::{InvitationRecord, MemberRecord, MembershipRecord, NewInvitation, OrganisationRecord};
use time::OffsetDateTime;

use crate::accounts::{ClientInfo, Session, normalize_email};
use crate::mails::{self, MailLang};
use crate::{App, AppError, Result};

/// How long an invitation link can be used.
pub const INVITATION_TTL: time::Duration = time::Duration::days(7);

const NAME_MAX: usize = 200;

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Changes the organisation and its members.
    Owner,
    Member,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<OrgRole> {
        match s {
            "owner" => Some(OrgRole::Owner),
            "member" => Some(OrgRole::Member),
            _ => None,
        }
    }

    /// Stored roles are written by this module only; anything else is read as the lesser.
    fn from_stored(s: &str) -> OrgRole {
        OrgRole::parse(s).unwrap_or(OrgRole::Member)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub postfach_ref: String,
    pub created_at: String,
}

impl From<OrganisationRecord> for Organisation {
    fn from(r: OrganisationRecord) -> Self {
        Organisation {
            id: r.id,
            name: r.name,
            postfach_ref: r.postfach_ref,
            created_at: r.created_at,
        }
    }
}

/// An organisation the session's account belongs to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Membership {
    pub organisation: Organisation,
    pub role: OrgRole,
    /// May read and answer the organisation's Postfach.
    pub postfach_access: bool,
    pub joined_at: String,
}

impl From<MembershipRecord> for Membership {
    fn from(r: MembershipRecord) -> Self {
        Membership {
            organisation: r.organisation.into(),
            role: OrgRole::from_stored(&r.role),
            postfach_access: r.postfach_access,
            joined_at: r.joined_at,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct OrganisationMember {
    pub account_id: String,
    pub email: String,
    pub role: OrgRole,
    pub postfach_access: bool,
    pub joined_at: String,
}

impl From<MemberRecord> for OrganisationMember {
    fn from(r: MemberRecord) -> Self {
        OrganisationMember {
            account_id: r.account_id,
            email: r.email,
            role: OrgRole::from_stored(&r.role),
            postfach_access: r.postfach_access,
            joined_at: r.joined_at,
        }
    }
}

/// An invitation not yet accepted, as owners see it. `id` is the hash of the link's token
/// (it names the invitation; the link cannot be made from it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PendingInvitation {
    pub id: String,
    pub email: String,
    pub role: OrgRole,
    pub postfach_access: bool,
    pub expires_at: String,
    pub created_at: String,
}

impl From<InvitationRecord> for PendingInvitation {
    fn from(r: InvitationRecord) -> Self {
        PendingInvitation {
            id: r.token_hash,
            email: r.email,
            role: OrgRole::from_stored(&r.role),
            postfach_access: r.postfach_access,
            expires_at: r.expires_at,
            created_at: r.created_at,
        }
    }
}

/// What a member sees of an organisation.
#[derive(Debug, Clone)]
pub struct OrganisationView {
    pub organisation: Organisation,
    pub me: Membership,
    pub members: Vec<OrganisationMember>,
    /// Open invitations; shown to owners only (empty for members).
    pub invitations: Vec<PendingInvitation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Open,
    Accepted,
    Expired,
}

/// What the invitation link page shows before it is accepted.
#[derive(Debug, Clone)]
pub struct InvitationInfo {
    pub organisation: Organisation,
    pub email: String,
    pub role: OrgRole,
    pub postfach_access: bool,
    pub expires_at: String,
    pub state: InvitationState,
}

/// Checks an organisation's name: trimmed, 2 to 200 characters, no control characters.
pub fn validate_organisation_name(input: &str) -> Result<String> {
    let name = input.trim();
    let err = |code: &str| AppError::InvalidField {
        field: "name",
        message: code.into(),
    };
    if name.is_empty() {
        return Err(err("org_name_missing"));
    }
    if name.chars().count() > NAME_MAX {
        return Err(err("org_name_too_long"));
    }
    if name.chars().count() < 2 || name.chars().any(char::is_control) {
        return Err(err("org_name_invalid"));
    }
    Ok(name.to_owned())
}

impl App {
    /// Creates an organisation with the session's account as its owner (with access to
    /// the organisation's Postfach).
    pub async fn create_organisation(
        &self,
        session: &Session,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Organisation> {
        let name = validate_organisation_name(name)?;
        let record = OrganisationRecord {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            postfach_ref: uuid::Uuid::new_v4().simple().to_string(),
            created_at: store::ts(OffsetDateTime::now_utc()),
        };
        self.store
            .create_organisation(&record, &session.account_id)
            .await?;
        self.event(
            Some(&session.account_id),
            "organisation_created",
            client,
            Some(&record.name),
        )
        .await?;
        Ok(record.into())
    }

    /// The organisations the account belongs to, by name.
    pub async fn organisations(&self, session: &Session) -> Result<Vec<Membership>> {
        Ok(self
            .store
            .memberships(&session.account_id)
            .await?
            .into_iter()
            .map(Membership::from)
            .collect())
    }

    /// The account's membership in one organisation, if any (e.g. to check an "acting for"
    /// choice on every request).
    pub async fn membership(
        &self,
        session: &Session,
        organisation_id: &str,
    ) -> Result<Option<Membership>> {
        let Some(org) = self.store.organisation(organisation_id).await? else {
            return Ok(None);
        };
        Ok(self
            .store
            .organisation_member(organisation_id, &session.account_id)
            .await?
            .map(|m| Membership {
                organisation: org.into(),
                role: OrgRole::from_stored(&m.role),
                postfach_access: m.postfach_access,
                joined_at: m.joined_at,
            }))
    }

    async fn require_member(&self, session: &Session, organisation_id: &str) -> Result<Membership> {
        self.membership(session, organisation_id)
            .await?
            .ok_or_else(|| AppError::NotFound("organisation".into()))
    }

    async fn require_owner(&self, session: &Session, organisation_id: &str) -> Result<Membership> {
        let m = self.require_member(session, organisation_id).await?;
        if m.role != OrgRole::Owner {
            return Err(AppError::Invalid("owner_required".into()));
        }
        Ok(m)
    }

    /// An organisation as its member sees it. `NotFound` for anyone else.
    pub async fn organisation_view(
        &self,
        session: &Session,
        organisation_id: &str,
    ) -> Result<OrganisationView> {
        let me = self.require_member(session, organisation_id).await?;
        let members = self
            .store
            .organisation_members(organisation_id)
            .await?
            .into_iter()
            .map(OrganisationMember::from)
            .collect();
        let invitations = if me.role == OrgRole::Owner {
            self.store
                .open_invitations(organisation_id, OffsetDateTime::now_utc())
                .await?
                .into_iter()
                .map(PendingInvitation::from)
                .collect()
        } else {
            Vec::new()
        };
        Ok(OrganisationView {
            organisation: me.organisation.clone(),
            me,
            members,
            invitations,
        })
    }

    /// Invites an e-mail address to the organisation (owners only): the link goes out
    /// through the mail outbox and can be accepted once within [`INVITATION_TTL`].
    pub async fn invite_member(
        &self,
        session: &Session,
        organisation_id: &str,
        email: &str,
        role: OrgRole,
        postfach_access: bool,
        client: &ClientInfo,
    ) -> Result<()> {
        let me = self.require_owner(session, organisation_id).await?;
        let email = normalize_email(email)?;
        let members = self.store.organisation_members(organisation_id).await?;
        if members.iter().any(|m| m.email == email) {
            return Err(AppError::InvalidField {
                field: "email",
                message: "already_member".into(),
            });
        }
        let (token, hash) = servicekonto::token::new_token();
        let now = OffsetDateTime::now_utc();
        self.store
            .insert_invitation(
                &NewInvitation {
                    token_hash: &hash,
                    organisation_id,
                    email: &email,
                    role: role.as_str(),
                    postfach_access,
                    invited_by: Some(&session.account_id),
                    expires_at: now + INVITATION_TTL,
                },
                now,
            )
            .await?;
        // The invitee's language if they have an account, else the inviter's.
        let lang = match self.store.account_by_email(&email).await? {
            Some(a) => MailLang::parse(&a.lang),
            None => MailLang::parse(&session.lang),
        };
        let link = format!(
            "{}/konto/einladung?token={token}&lang={}",
            self.settings.public_url,
            lang.code()
        );
        let text = mails::organisation_invitation(
            lang,
            &me.organisation.name,
            &session.email,
            &link,
            INVITATION_TTL.whole_days(),
        );
        if !self.send_mail(&email, "org_invitation", text).await? {
            // The mail limit for this address is reached: an invitation nobody received
            // would only confuse, so it goes again.
            self.store.delete_invitation(organisation_id, &hash).await?;
            return Err(AppError::InvalidField {
                field: "email",
                message: "rate_limited".into(),
            });
        }
        self.event(
            Some(&session.account_id),
            "member_invited",
            client,
            Some(&format!("{}: {email}", me.organisation.name)),
        )
        .await
    }

    /// Withdraws an open invitation (owners only). False if there is none.
    pub async fn withdraw_invitation(
        &self,
        session: &Session,
        organisation_id: &str,
        invitation_id: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let me = self.require_owner(session, organisation_id).await?;
        let done = self
            .store
            .delete_invitation(organisation_id, invitation_id)
            .await?;
        if done {
            self.event(
                Some(&session.account_id),
                "invitation_withdrawn",
                client,
                Some(&me.organisation.name),
            )
            .await?;
        }
        Ok(done)
    }

    /// What an invitation link offers, for the page behind it. `None` if the link is unknown.
    pub async fn invitation_info(&self, token: &str) -> Result<Option<InvitationInfo>> {
        if token.is_empty() || token.len() > 100 {
            return Ok(None);
        }
        let hash = servicekonto::token::token_hash(token);
        let Some(inv) = self.store.invitation(&hash).await? else {
            return Ok(None);
        };
        let Some(org) = self.store.organisation(&inv.organisation_id).await? else {
            return Ok(None);
        };
        let state = if inv.accepted_at.is_some() {
            InvitationState::Accepted
        } else if inv.expires_at <= store::ts(OffsetDateTime::now_utc()) {
            InvitationState::Expired
        } else {
            InvitationState::Open
        };
        Ok(Some(InvitationInfo {
            organisation: org.into(),
            email: inv.email,
            role: OrgRole::from_stored(&inv.role),
            postfach_access: inv.postfach_access,
            expires_at: inv.expires_at,
            state,
        }))
    }

    /// Accepts an invitation with the logged-in account, whose e-mail address must be the
    /// one invited. Errors (as `Invalid`): `invitation_invalid`, `invitation_used`,
    /// `invitation_expired`, `invitation_wrong_email`; `Conflict("already_member")`.
    pub async fn accept_invitation(
        &self,
        session: &Session,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Organisation> {
        let invalid = |code: &str| AppError::Invalid(code.into());
        let Some(info) = self.invitation_info(token).await? else {
            return Err(invalid("invitation_invalid"));
        };
        match info.state {
            InvitationState::Accepted => return Err(invalid("invitation_used")),
            InvitationState::Expired => return Err(invalid("invitation_expired")),
            InvitationState::Open => {}
        }
        if info.email != session.email {
            return Err(invalid("invitation_wrong_email"));
        }
        let hash = servicekonto::token::token_hash(token);
        let now = OffsetDateTime::now_utc();
        let joined = match self
            .store
            .accept_invitation(&hash, &session.account_id, &session.email, now)
            .await
        {
            Ok(j) => j,
            Err(store::StoreError::Conflict(_)) => {
                return Err(AppError::Conflict("already_member".into()));
            }
            Err(e) => return Err(e.into()),
        };
        if joined.is_none() {
            // Used or expired a moment ago (another tab, another node).
            return Err(invalid("invitation_used"));
        }
        self.event(
            Some(&session.account_id),
            "member_joined",
            client,
            Some(&info.organisation.name),
        )
        .await?;
        let invited_by = self
            .store
            .invitation(&hash)
            .await?
            .and_then(|i| i.invited_by);
        if let Some(inviter) = invited_by
            && inviter != session.account_id
        {
            self.store
                .add_security_event(
                    Some(&inviter),
                    "invitation_accepted",
                    None,
                    None,
                    Some(&format!("{}: {}", info.organisation.name, session.email)),
                    now,
                )
                .await?;
        }
        Ok(info.organisation)
    }

    /// Changes a member's role and Postfach permission (owners only). The last owner
    /// cannot stop being one: `Conflict("last_owner")`.
    pub async fn update_member(
        &self,
        session: &Session,
        organisation_id: &str,
        account_id: &str,
        role: OrgRole,
        postfach_access: bool,
        client: &ClientInfo,
    ) -> Result<()> {
        let me = self.require_owner(session, organisation_id).await?;
        self.store
            .update_member(organisation_id, account_id, role.as_str(), postfach_access)
            .await?;
        let detail = format!(
            "{}: {account_id} {}{}",
            me.organisation.name,
            role.as_str(),
            if postfach_access { " +postfach" } else { "" }
        );
        self.event(
            Some(&session.account_id),
            "member_changed",
            client,
            Some(&detail),
        )
        .await?;
        if account_id != session.account_id {
            self.store
                .add_security_event(
                    Some(account_id),
                    "member_changed",
                    None,
                    None,
                    Some(&detail),
                    OffsetDateTime::now_utc(),
                )
                .await?;
        }
        Ok(())
    }

    /// Removes a member (owners only; an owner may remove themselves if another owner
    /// remains). `Conflict("last_owner")` for the last owner.
    pub async fn remove_member(
        &self,
        session: &Session,
        organisation_id: &str,
        account_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let me = self.require_owner(session, organisation_id).await?;
        self.store
            .remove_member(organisation_id, account_id)
            .await?;
        self.event(
            Some(&session.account_id),
            "member_removed",
            client,
            Some(&format!("{}: {account_id}", me.organisation.name)),
        )
        .await?;
        if account_id != session.account_id {
            self.store
                .add_security_event(
                    Some(account_id),
                    "member_removed",
                    None,
                    None,
                    Some(&me.organisation.name),
                    OffsetDateTime::now_utc(),
                )
                .await?;
        }
        Ok(())
    }

    /// Leaves an organisation. The last owner cannot: `Conflict("last_owner")`.
    pub async fn leave_organisation(
        &self,
        session: &Session,
        organisation_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let me = self.require_member(session, organisation_id).await?;
        self.store
            .remove_member(organisation_id, &session.account_id)
            .await?;
        self.event(
            Some(&session.account_id),
            "member_left",
            client,
            Some(&me.organisation.name),
        )
        .await
    }

    /// The Postfächer the session's account may read and answer: its own (labelled with its
    /// e-mail address) and those of the organisations where it has Postfach access
    /// (labelled with the organisation's name). For the Postfach's authorisation.
    pub async fn postfach_refs_for(&self, session: &Session) -> Result<Vec<(String, String)>> {
        let mut refs = vec![(session.postfach_ref.clone(), session.email.clone())];
        refs.extend(
            self.store
                .organisation_postfach_refs(&session.account_id)
                .await?,
        );
        Ok(refs)
    }

    /// The account's memberships for the data export.
    pub(crate) async fn export_organisations(&self, account_id: &str) -> Result<serde_json::Value> {
        let memberships: Vec<Membership> = self
            .store
            .memberships(account_id)
            .await?
            .into_iter()
            .map(Membership::from)
            .collect();
        Ok(serde_json::to_value(memberships).unwrap_or_default())
    }
}
