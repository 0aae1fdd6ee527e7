//! Organisation accounts: organisations, their members (role and Postfach permission) and
//! invitations by e-mail. Invitation tokens arrive here hashed.
//!
//! "Never the last owner": every change that could take away an owner locks the organisation
//! first (a no-op `UPDATE` of its row, which is a row lock on PostgreSQL; on SQLite the write
//! transaction is `BEGIN IMMEDIATE` anyway), then counts the owners. Two owners demoting each
//! other at the same moment are therefore serialised and the second one is refused.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, Store, StoreError, conflict, ts};

/// An organisation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganisationRecord {
    pub id: String,
    pub name: String,
    pub postfach_ref: String,
    pub created_at: String,
}

/// One member of an organisation, with the member's e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub organisation_id: String,
    pub account_id: String,
    pub email: String,
    /// `owner` or `member`.
    pub role: String,
    pub postfach_access: bool,
    pub joined_at: String,
}

/// An organisation an account belongs to, with the account's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    pub organisation: OrganisationRecord,
    pub role: String,
    pub postfach_access: bool,
    pub joined_at: String,
}

/// An invitation as stored; the link's token is known only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRecord {
    pub token_hash: String,
    pub organisation_id: String,
    pub email: String,
    pub role: String,
    pub postfach_access: bool,
    pub invited_by: Option<String>,
    pub expires_at: String,
    pub accepted_at: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct NewInvitation<'a> {
    pub token_hash: &'a str,
    pub organisation_id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub postfach_access: bool,
    pub invited_by: Option<&'a str>,
    pub expires_at: OffsetDateTime,
}

fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool> {
    let v: i64 = row.try_get(column)?;
    Ok(v != 0)
}

fn organisation_from_row(row: &sqlx::any::AnyRow) -> Result<OrganisationRecord> {
    Ok(OrganisationRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        postfach_ref: row.try_get("postfach_ref")?,
        created_at: row.try_get("created_at")?,
    })
}

fn member_from_row(row: &sqlx::any::AnyRow) -> Result<MemberRecord> {
    Ok(MemberRecord {
        organisation_id: row.try_get("organisation_id")?,
        account_id: row.try_get("account_id")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        postfach_access: flag(row, "postfach_access")?,
        joined_at: row.try_get("joined_at")?,
    })
}

const INVITATION_COLUMNS: &str = "token_hash, organisation_id, email, role, postfach_access, \
     invited_by, expires_at, accepted_at, created_at";

fn invitation_from_row(row: &sqlx::any::AnyRow) -> Result<InvitationRecord> {
    Ok(InvitationRecord {
        token_hash: row.try_get("token_hash")?,
        organisation_id: row.try_get("organisation_id")?,
        email: row.try_get("email")?,
        role: row.try_get("role")?,
        postfach_access: flag(row, "postfach_access")?,
        invited_by: row.try_get("invited_by")?,
        expires_at: row.try_get("expires_at")?,
        accepted_at: row.try_get("accepted_at")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Locks the organisation's row for the rest of the transaction; `NotFound` if it is gone.
async fn lock_organisation(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organisation_id: &str,
) -> Result<()> {
    let done = sqlx::query("UPDATE organisations SET name = name WHERE id = $1")
        .bind(organisation_id)
        .execute(&mut **tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "organisation {organisation_id}"
        )));
    }
    Ok(())
}

/// Owners of the organisation other than `except`.
async fn other_owners(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organisation_id: &str,
    except: &str,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM organisation_members \
         WHERE organisation_id = $1 AND role = 'owner' AND account_id <> $2",
    )
    .bind(organisation_id)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?)
}

async fn role_of(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    organisation_id: &str,
    account_id: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT role FROM organisation_members WHERE organisation_id = $1 AND account_id = $2",
    )
    .bind(organisation_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// The conflict message when a change would leave the organisation without an owner.
pub const LAST_OWNER: &str = "last_owner";

impl Store {
    /// Creates an organisation with `owner_account_id` as its first owner (with Postfach
    /// access), in one transaction.
    pub async fn create_organisation(
        &self,
        org: &OrganisationRecord,
        owner_account_id: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO organisations (id, name, postfach_ref, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.postfach_ref)
        .bind(&org.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || "an organisation with this id or Postfach exists".into()))?;
        sqlx::query(
            "INSERT INTO organisation_members (organisation_id, account_id, role, postfach_access, joined_at) \
             VALUES ($1, $2, 'owner', 1, $3)",
        )
        .bind(&org.id)
        .bind(owner_account_id)
        .bind(&org.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || "the owner's account does not exist".into()))?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn organisation(&self, id: &str) -> Result<Option<OrganisationRecord>> {
        let row = sqlx::query(
            "SELECT id, name, postfach_ref, created_at FROM organisations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(organisation_from_row).transpose()
    }

    pub async fn organisation_by_postfach_ref(
        &self,
        postfach_ref: &str,
    ) -> Result<Option<OrganisationRecord>> {
        let row = sqlx::query(
            "SELECT id, name, postfach_ref, created_at FROM organisations WHERE postfach_ref = $1",
        )
        .bind(postfach_ref)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(organisation_from_row).transpose()
    }

    /// The organisations the account belongs to, by name.
    pub async fn memberships(&self, account_id: &str) -> Result<Vec<MembershipRecord>> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.postfach_ref, o.created_at, m.role, m.postfach_access, m.joined_at \
             FROM organisation_members m JOIN organisations o ON o.id = m.organisation_id \
             WHERE m.account_id = $1 ORDER BY o.name, o.id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MembershipRecord {
                    organisation: organisation_from_row(r)?,
                    role: r.try_get("role")?,
                    postfach_access: flag(r, "postfach_access")?,
                    joined_at: r.try_get("joined_at")?,
                })
            })
            .collect()
    }

    /// One member of one organisation, if the account belongs to it.
    pub async fn organisation_member(
        &self,
        organisation_id: &str,
        account_id: &str,
    ) -> Result<Option<MemberRecord>> {
        let row = sqlx::query(
            "SELECT m.organisation_id, m.account_id, a.email, m.role, m.postfach_access, m.joined_at \
             FROM organisation_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.organisation_id = $1 AND m.account_id = $2",
        )
        .bind(organisation_id)
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    /// The members of an organisation: owners first, then by e-mail address.
    pub async fn organisation_members(&self, organisation_id: &str) -> Result<Vec<MemberRecord>> {
        let rows = sqlx::query(
            "SELECT m.organisation_id, m.account_id, a.email, m.role, m.postfach_access, m.joined_at \
             FROM organisation_members m JOIN accounts a ON a.id = m.account_id \
             WHERE m.organisation_id = $1 \
             ORDER BY CASE WHEN m.role = 'owner' THEN 0 ELSE 1 END, a.email",
        )
        .bind(organisation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn insert_invitation(
        &self,
        inv: &NewInvitation<'_>,
        now: OffsetDateTime,
    ) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO organisation_invitations ({INVITATION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)"
        ))
        .bind(inv.token_hash)
        .bind(inv.organisation_id)
        .bind(inv.email)
        .bind(inv.role)
        .bind(i64::from(inv.postfach_access))
        .bind(inv.invited_by)
        .bind(ts(inv.expires_at))
        .bind(ts(now))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || "the organisation does not exist".into()))?;
        Ok(())
    }

    /// An invitation by its token's hash, whatever its state.
    pub async fn invitation(&self, token_hash: &str) -> Result<Option<InvitationRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM organisation_invitations WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invitation_from_row).transpose()
    }

    /// The invitations of an organisation that can still be accepted, newest first.
    pub async fn open_invitations(
        &self,
        organisation_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<InvitationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM organisation_invitations \
             WHERE organisation_id = $1 AND accepted_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC LIMIT 200"
        ))
        .bind(organisation_id)
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    /// Withdraws an invitation that was not accepted yet. False if there is none.
    pub async fn delete_invitation(&self, organisation_id: &str, token_hash: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM organisation_invitations \
             WHERE organisation_id = $1 AND token_hash = $2 AND accepted_at IS NULL",
        )
        .bind(organisation_id)
        .bind(token_hash)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accepts an invitation for `account_id`, once: the invitation must be unused, unexpired
    /// and addressed to `email`. Returns the membership's organisation id, or `None` if the
    /// invitation cannot be used. `Conflict` if the account is a member already (the
    /// invitation then stays unused).
    pub async fn accept_invitation(
        &self,
        token_hash: &str,
        account_id: &str,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>> {
        let now = ts(now);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE organisation_invitations SET accepted_at = $3 \
             WHERE token_hash = $1 AND email = $2 AND accepted_at IS NULL AND expires_at > $3 \
             RETURNING organisation_id, role, postfach_access",
        )
        .bind(token_hash)
        .bind(email)
        .bind(&now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let organisation_id: String = row.try_get("organisation_id")?;
        let role: String = row.try_get("role")?;
        let access: i64 = row.try_get("postfach_access")?;
        sqlx::query(
            "INSERT INTO organisation_members (organisation_id, account_id, role, postfach_access, joined_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&organisation_id)
        .bind(account_id)
        .bind(&role)
        .bind(access)
        .bind(&now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || "already_member".into()))?;
        tx.commit().await?;
        Ok(Some(organisation_id))
    }

    /// Changes a member's role and Postfach permission. `NotFound` if not a member;
    /// `Conflict(LAST_OWNER)` if this would leave the organisation without an owner.
    pub async fn update_member(
        &self,
        organisation_id: &str,
        account_id: &str,
        role: &str,
        postfach_access: bool,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_organisation(&mut tx, organisation_id).await?;
        let Some(current) = role_of(&mut tx, organisation_id, account_id).await? else {
            return Err(StoreError::NotFound(format!("member {account_id}")));
        };
        if current == "owner"
            && role != "owner"
            && other_owners(&mut tx, organisation_id, account_id).await? == 0
        {
            return Err(StoreError::Conflict(LAST_OWNER.into()));
        }
        sqlx::query(
            "UPDATE organisation_members SET role = $3, postfach_access = $4 \
             WHERE organisation_id = $1 AND account_id = $2",
        )
        .bind(organisation_id)
        .bind(account_id)
        .bind(role)
        .bind(i64::from(postfach_access))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes a member (or lets one leave). `NotFound` if not a member;
    /// `Conflict(LAST_OWNER)` for the last owner.
    pub async fn remove_member(&self, organisation_id: &str, account_id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        lock_organisation(&mut tx, organisation_id).await?;
        let Some(current) = role_of(&mut tx, organisation_id, account_id).await? else {
            return Err(StoreError::NotFound(format!("member {account_id}")));
        };
        if current == "owner" && other_owners(&mut tx, organisation_id, account_id).await? == 0 {
            return Err(StoreError::Conflict(LAST_OWNER.into()));
        }
        sqlx::query(
            "DELETE FROM organisation_members WHERE organisation_id = $1 AND account_id = $2",
        )
        .bind(organisation_id)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The Postfach references of the organisations in which the account may use the
    /// organisation Postfach: (reference, organisation name).
    pub async fn organisation_postfach_refs(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT o.postfach_ref, o.name \
             FROM organisation_members m JOIN organisations o ON o.id = m.organisation_id \
             WHERE m.account_id = $1 AND m.postfach_access <> 0 ORDER BY o.name, o.id",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("postfach_ref")?, r.try_get("name")?)))
            .collect()
    }
}

impl Store {
    /// Deletes an organisation with its memberships and invitations (its Postfach messages
    /// stay: they are the authorities' records of delivery).
    pub async fn delete_organisation(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM organisations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
