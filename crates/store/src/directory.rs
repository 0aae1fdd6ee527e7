//! Authorities, services, rules and destinations.

use domain::{Ars, AuthorityKind, DestinationId, Leistungsschluessel, ResponsibleLevel};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use verzeichnis::gebiete::ImportPlan;
use verzeichnis::{Authority, DestinationRecord, Rule, RuleTarget, Service, SignedScope};

use crate::{Result, Store, StoreError, conflict, now};

/// What an area import did, as stored in `imports.summary` and printed by the CLI.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct AreaImportSummary {
    pub import_id: String,
    pub inserted: usize,
    pub updated: usize,
    pub deactivated: usize,
    pub unchanged: usize,
    pub destinations_created: usize,
}

#[derive(Debug, Clone, Copy)]
pub enum RuleChange {
    Created,
    Deleted,
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn parse_ars(s: &str) -> Result<Ars> {
    Ars::parse(s).map_err(StoreError::corrupt)
}

fn authority_from_row(r: &AnyRow) -> Result<Authority> {
    let kind: String = r.try_get("kind")?;
    let details: String = r.try_get("details")?;
    Ok(Authority {
        ars: parse_ars(&r.try_get::<String, _>("ars")?)?,
        kind: AuthorityKind::parse(&kind)
            .ok_or_else(|| StoreError::corrupt(format!("kind {kind}")))?,
        name: r.try_get("name")?,
        seat: r.try_get("seat")?,
        parent: r
            .try_get::<Option<String>, _>("parent_ars")?
            .map(|s| parse_ars(&s))
            .transpose()?,
        active: r.try_get::<i64, _>("active")? != 0,
        successor: r
            .try_get::<Option<String>, _>("successor_ars")?
            .map(|s| parse_ars(&s))
            .transpose()?,
        details: serde_json::from_str(&details).map_err(StoreError::corrupt)?,
    })
}

const AUTHORITY_COLUMNS: &str = "ars, kind, name, seat, parent_ars, active, successor_ars, details";

impl Store {
    pub async fn generation(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT generation FROM directory_state WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn load_authorities(&self) -> Result<Vec<Authority>> {
        let rows = sqlx::query(&format!(
            "SELECT {AUTHORITY_COLUMNS} FROM authorities ORDER BY ars"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(authority_from_row).collect()
    }

    pub async fn authority(&self, ars: &Ars) -> Result<Option<Authority>> {
        let row = sqlx::query(&format!(
            "SELECT {AUTHORITY_COLUMNS} FROM authorities WHERE ars = $1"
        ))
        .bind(ars.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(authority_from_row).transpose()
    }

    /// The recorded changes of one authority, oldest first: (time, source, change, before, after).
    pub async fn authority_history(
        &self,
        ars: &Ars,
    ) -> Result<Vec<(String, String, String, Option<String>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT changed_at, source, change, before, after FROM authority_history \
             WHERE ars = $1 ORDER BY id",
        )
        .bind(ars.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                ))
            })
            .collect()
    }

    /// Applies an import plan in one transaction: the authorities, their history, a
    /// destination for each new authority, and the import record.
    pub async fn apply_area_import(
        &self,
        plan: &ImportPlan,
        source_name: &str,
        sha256: &str,
    ) -> Result<AreaImportSummary> {
        let import_id = uuid::Uuid::new_v4().to_string();
        let source = format!("import:{import_id}");
        let at = now();
        let mut tx = self.begin_write().await?;
        let mut summary = AreaImportSummary {
            import_id: import_id.clone(),
            inserted: plan.insert.len(),
            updated: plan.update.len(),
            deactivated: plan.deactivate.len(),
            unchanged: plan.unchanged,
            destinations_created: 0,
        };
        // Parents first, so that a reader never sees a child without its parent.
        let mut inserts: Vec<&Authority> = plan.insert.iter().collect();
        inserts.sort_by_key(|a| a.ars.as_str().len());
        for a in inserts {
            sqlx::query(
                "INSERT INTO authorities (ars, kind, name, seat, parent_ars, active, successor_ars, \
                 details, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(a.ars.as_str())
            .bind(a.kind.as_str())
            .bind(&a.name)
            .bind(a.seat.as_deref())
            .bind(a.parent.as_ref().map(Ars::as_str))
            .bind(i64::from(a.active))
            .bind(a.successor.as_ref().map(Ars::as_str))
            .bind(json(&a.details))
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("authority {} exists already", a.ars)))?;
            history(&mut tx, &a.ars, &at, &source, "insert", None, Some(a)).await?;
            summary.destinations_created += ensure_destination(&mut tx, &a.ars, &at).await?;
        }
        for (before, after) in plan.update.iter().chain(plan.deactivate.iter()) {
            sqlx::query(
                "UPDATE authorities SET kind = $2, name = $3, seat = $4, parent_ars = $5, \
                 active = $6, successor_ars = $7, updated_at = $8 WHERE ars = $1",
            )
            .bind(after.ars.as_str())
            .bind(after.kind.as_str())
            .bind(&after.name)
            .bind(after.seat.as_deref())
            .bind(after.parent.as_ref().map(Ars::as_str))
            .bind(i64::from(after.active))
            .bind(after.successor.as_ref().map(Ars::as_str))
            .bind(&at)
            .execute(&mut *tx)
            .await?;
            let change = if after.active { "update" } else { "deactivate" };
            history(
                &mut tx,
                &after.ars,
                &at,
                &source,
                change,
                Some(before),
                Some(after),
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO imports (id, kind, source_name, sha256, imported_at, summary) \
             VALUES ($1, 'areas', $2, $3, $4, $5)",
        )
        .bind(&import_id)
        .bind(source_name)
        .bind(sha256)
        .bind(&at)
        .bind(json(&summary))
        .execute(&mut *tx)
        .await?;
        if !plan.is_empty() {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(summary)
    }

    /// Adds a member municipality or other authority by hand (not from the Gemeindeverzeichnis).
    pub async fn insert_authority(&self, a: &Authority, source: &str) -> Result<bool> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "INSERT INTO authorities (ars, kind, name, seat, parent_ars, active, successor_ars, \
             details, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (ars) DO NOTHING",
        )
        .bind(a.ars.as_str())
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.seat.as_deref())
        .bind(a.parent.as_ref().map(Ars::as_str))
        .bind(i64::from(a.active))
        .bind(a.successor.as_ref().map(Ars::as_str))
        .bind(json(&a.details))
        .bind(&at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            history(&mut tx, &a.ars, &at, source, "insert", None, Some(a)).await?;
            ensure_destination(&mut tx, &a.ars, &at).await?;
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Replaces the descriptive details (addresses, contacts, hours, links) of an authority.
    pub async fn update_authority_details(
        &self,
        ars: &Ars,
        details: &verzeichnis::AuthorityDetails,
        source: &str,
    ) -> Result<()> {
        self.update_authority_details_many(&[(ars.clone(), details.clone())], source)
            .await
            .map(|_| ())
    }

    /// Sets the details of many authorities in one transaction (the demo seeding).
    pub async fn update_authority_details_many(
        &self,
        items: &[(Ars, verzeichnis::AuthorityDetails)],
        source: &str,
    ) -> Result<usize> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        for (ars, details) in items {
            let before = sqlx::query(&format!(
                "SELECT {AUTHORITY_COLUMNS} FROM authorities WHERE ars = $1"
            ))
            .bind(ars.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(authority_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("authority {ars}")))?;
            if before.details == *details {
                continue;
            }
            sqlx::query("UPDATE authorities SET details = $2, updated_at = $3 WHERE ars = $1")
                .bind(ars.as_str())
                .bind(json(details))
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            let mut after = before.clone();
            after.details = details.clone();
            history(
                &mut tx,
                ars,
                &at,
                source,
                "update",
                Some(&before),
                Some(&after),
            )
            .await?;
            changed += 1;
        }
        if changed > 0 {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn load_services(&self) -> Result<Vec<Service>> {
        let rows = sqlx::query("SELECT key, name, typisierung, details FROM services ORDER BY key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let key: String = r.try_get(0)?;
                let details: String = r.try_get(3)?;
                Ok(Service {
                    key: Leistungsschluessel::parse(&key).map_err(StoreError::corrupt)?,
                    name: r.try_get(1)?,
                    typisierung: r.try_get(2)?,
                    details: serde_json::from_str(&details).map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// Inserts new services and renames changed ones; details already stored are kept unless
    /// `with_details` (the catalogue CSV carries no details, the demo does).
    pub async fn upsert_services(
        &self,
        services: &[Service],
        with_details: bool,
    ) -> Result<(usize, usize)> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let (mut inserted, mut updated) = (0, 0);
        for s in services {
            let existing: Option<(String, String, String)> =
                sqlx::query_as("SELECT name, typisierung, details FROM services WHERE key = $1")
                    .bind(s.key.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let details = json(&s.details);
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO services (key, name, typisierung, details, updated_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(s.key.as_str())
                    .bind(&s.name)
                    .bind(&s.typisierung)
                    .bind(&details)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                    inserted += 1;
                }
                Some((name, typ, old_details)) => {
                    let new_details = if with_details {
                        details
                    } else {
                        old_details.clone()
                    };
                    if name != s.name || typ != s.typisierung || new_details != old_details {
                        sqlx::query(
                            "UPDATE services SET name = $2, typisierung = $3, details = $4, \
                             updated_at = $5 WHERE key = $1",
                        )
                        .bind(s.key.as_str())
                        .bind(&s.name)
                        .bind(&s.typisierung)
                        .bind(&new_details)
                        .bind(&at)
                        .execute(&mut *tx)
                        .await?;
                        updated += 1;
                    }
                }
            }
        }
        if inserted + updated > 0 {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok((inserted, updated))
    }

    pub async fn load_rules(&self) -> Result<Vec<Rule>> {
        let rows = sqlx::query(
            "SELECT id, service_key, area_ars, target_ars, target_level, note FROM rules \
             ORDER BY service_key, area_ars",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    pub async fn rule_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM rules")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Inserts rules in one transaction; a rule for the same service and area as an existing
    /// one is a conflict unless `replace`, which replaces the existing one.
    pub async fn insert_rules(&self, rules: &[Rule], actor: &str, replace: bool) -> Result<usize> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let mut written = 0;
        for rule in rules {
            if replace {
                let old = sqlx::query(
                    "SELECT id, service_key, area_ars, target_ars, target_level, note FROM rules \
                     WHERE service_key = $1 AND area_ars = $2",
                )
                .bind(rule.service.as_str())
                .bind(rule.area.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(old) = old.as_ref().map(rule_from_row).transpose()? {
                    if old.target == rule.target && old.note == rule.note {
                        continue;
                    }
                    sqlx::query("DELETE FROM rules WHERE id = $1")
                        .bind(old.id.to_string())
                        .execute(&mut *tx)
                        .await?;
                    rule_history(&mut tx, &old, &at, actor, RuleChange::Deleted).await?;
                }
            }
            let (target_ars, target_level) = match &rule.target {
                RuleTarget::Authority(a) => (Some(a.as_str()), None),
                RuleTarget::Level(l) => (None, Some(l.as_str())),
            };
            sqlx::query(
                "INSERT INTO rules (id, service_key, area_ars, target_ars, target_level, note, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(rule.id.to_string())
            .bind(rule.service.as_str())
            .bind(rule.area.as_str())
            .bind(target_ars)
            .bind(target_level)
            .bind(rule.note.as_deref())
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                conflict(e, || {
                    format!(
                        "a rule for service {} in area {} exists already, or the service or \
                         authority is unknown",
                        rule.service, rule.area
                    )
                })
            })?;
            rule_history(&mut tx, rule, &at, actor, RuleChange::Created).await?;
            written += 1;
        }
        if written > 0 {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(written)
    }

    pub async fn delete_rule(&self, id: uuid::Uuid, actor: &str) -> Result<Option<Rule>> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let old = sqlx::query(
            "SELECT id, service_key, area_ars, target_ars, target_level, note FROM rules WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(rule_from_row)
        .transpose()?;
        if let Some(old) = &old {
            sqlx::query("DELETE FROM rules WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            rule_history(&mut tx, old, &at, actor, RuleChange::Deleted).await?;
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(old)
    }

    pub async fn load_destinations(&self) -> Result<Vec<DestinationRecord>> {
        let rows = sqlx::query(
            "SELECT id, authority_ars, status FROM destinations ORDER BY authority_ars",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut index = std::collections::HashMap::new();
        for r in &rows {
            let id: String = r.try_get(0)?;
            let authority = parse_ars(&r.try_get::<String, _>(1)?)?;
            index.insert(authority.clone(), out.len());
            out.push(DestinationRecord {
                id: DestinationId(uuid::Uuid::parse_str(&id).map_err(StoreError::corrupt)?),
                authority,
                status: r.try_get(2)?,
                signatures: Default::default(),
            });
        }
        let sigs = sqlx::query(
            "SELECT authority_ars, scope, signature, claims_hash FROM destination_signatures",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &sigs {
            let authority = parse_ars(&r.try_get::<String, _>(0)?)?;
            if let Some(&i) = index.get(&authority) {
                out[i].signatures.insert(
                    r.try_get(1)?,
                    SignedScope {
                        signature: r.try_get(2)?,
                        claims_hash: r.try_get(3)?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Stores new destination signatures for (authority, scope); `None` removes one that no
    /// longer names anything. Bumps the generation so that every node serves them.
    pub async fn save_signatures(
        &self,
        changes: &[(Ars, String, Option<SignedScope>)],
    ) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let at = now();
        let mut tx = self.begin_write().await?;
        for (ars, scope, signed) in changes {
            match signed {
                Some(s) => {
                    sqlx::query(
                        "INSERT INTO destination_signatures (authority_ars, scope, signature, claims_hash, signed_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (authority_ars, scope) DO UPDATE SET \
                         signature = excluded.signature, claims_hash = excluded.claims_hash, signed_at = excluded.signed_at",
                    )
                    .bind(ars.as_str())
                    .bind(scope)
                    .bind(&s.signature)
                    .bind(&s.claims_hash)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM destination_signatures WHERE authority_ars = $1 AND scope = $2")
                        .bind(ars.as_str())
                        .bind(scope)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn rule_from_row(r: &AnyRow) -> Result<Rule> {
    let id: String = r.try_get(0)?;
    let service: String = r.try_get(1)?;
    let area: String = r.try_get(2)?;
    let target_ars: Option<String> = r.try_get(3)?;
    let target_level: Option<String> = r.try_get(4)?;
    let target = match (target_ars, target_level) {
        (Some(a), None) => RuleTarget::Authority(parse_ars(&a)?),
        (None, Some(l)) => RuleTarget::Level(
            ResponsibleLevel::parse(&l).ok_or_else(|| StoreError::corrupt(format!("level {l}")))?,
        ),
        _ => {
            return Err(StoreError::corrupt(format!(
                "rule {id} has no single target"
            )));
        }
    };
    Ok(Rule {
        id: uuid::Uuid::parse_str(&id).map_err(StoreError::corrupt)?,
        service: Leistungsschluessel::parse(&service).map_err(StoreError::corrupt)?,
        area: parse_ars(&area)?,
        target,
        note: r.try_get(5)?,
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

async fn bump_generation(tx: &mut Tx) -> Result<()> {
    sqlx::query("UPDATE directory_state SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn ensure_destination(tx: &mut Tx, ars: &Ars, at: &str) -> Result<usize> {
    let id = DestinationId::for_authority(ars);
    Ok(sqlx::query(
        "INSERT INTO destinations (id, authority_ars, status, created_at) VALUES ($1, $2, 'created', $3) \
         ON CONFLICT (authority_ars) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(ars.as_str())
    .bind(at)
    .execute(&mut **tx)
    .await?
    .rows_affected() as usize)
}

async fn history(
    tx: &mut Tx,
    ars: &Ars,
    at: &str,
    source: &str,
    change: &str,
    before: Option<&Authority>,
    after: Option<&Authority>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO authority_history (ars, changed_at, source, change, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(ars.as_str())
    .bind(at)
    .bind(source)
    .bind(change)
    .bind(before.map(json))
    .bind(after.map(json))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn rule_history(
    tx: &mut Tx,
    rule: &Rule,
    at: &str,
    actor: &str,
    change: RuleChange,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO rule_history (rule_id, changed_at, actor, change, rule) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(rule.id.to_string())
    .bind(at)
    .bind(actor)
    .bind(match change {
        RuleChange::Created => "created",
        RuleChange::Deleted => "deleted",
    })
    .bind(json(rule))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
