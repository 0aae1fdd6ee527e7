//! Destination signatures: computed from the rules whenever they change, never per request.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crypto::RsaSigningKey;
use domain::{Ars, Leistungsschluessel};
use verzeichnis::SignedScope;
use verzeichnis::signature::claims;

use crate::{App, AppError, Result};

type Pairs = BTreeSet<(Leistungsschluessel, Ars)>;

struct Job {
    authority: Ars,
    scope: String,
    claims: serde_json::Value,
    claims_hash: String,
}

/// The host part of the public URL, FIT-Connect's `submissionHost`.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

impl App {
    /// Brings every destination signature in line with the rules: signs what is new or
    /// changed, removes what names nothing any more. Returns the number of changes.
    pub async fn resign(&self) -> Result<usize> {
        let _one_at_a_time = self.signing.lock().await;
        // Another node may have signed already: work from what the database holds now.
        self.reload_if_changed().await?;
        let dir = self.directory.load_full();
        let key = self
            .routing_keys
            .first()
            .cloned()
            .ok_or_else(|| AppError::Internal("no routing signing key".into()))?;
        let issuer = self.settings.public_url.clone();
        let host = host_of(&issuer).to_owned();

        let mut wanted: BTreeMap<(Ars, String), Pairs> = BTreeMap::new();
        for (authority, pairs) in dir.responsibilities() {
            for (svc, area) in pairs {
                let scope = svc.group().to_owned();
                wanted
                    .entry((authority.clone(), scope))
                    .or_default()
                    .insert((svc, area));
            }
        }
        let mut jobs = Vec::new();
        for ((authority, scope), pairs) in &wanted {
            let Some(dest) = dir.destination(authority) else {
                continue;
            };
            let claims = claims(dest.id, &issuer, &host, pairs);
            let claims_hash = crypto::sha256_hex(format!("{}\n{claims}", key.kid()).as_bytes());
            if dest.signatures.get(scope).map(|s| &s.claims_hash) != Some(&claims_hash) {
                jobs.push(Job {
                    authority: authority.clone(),
                    scope: scope.clone(),
                    claims,
                    claims_hash,
                });
            }
        }
        let mut changes: Vec<(Ars, String, Option<SignedScope>)> = Vec::new();
        for dest in dir.destinations() {
            for scope in dest.signatures.keys() {
                if !wanted.contains_key(&(dest.authority.clone(), scope.clone())) {
                    changes.push((dest.authority.clone(), scope.clone(), None));
                }
            }
        }
        if jobs.is_empty() && changes.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let count = jobs.len();
        let signed = tokio::task::spawn_blocking(move || sign_all(&key, jobs))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))??;
        changes.extend(signed);
        self.store.save_signatures(&changes).await?;
        tracing::info!(
            signed = count,
            removed = changes.len() - count,
            ms = started.elapsed().as_millis() as u64,
            "destination signatures updated"
        );
        self.reload().await?;
        Ok(changes.len())
    }
}

/// Signs on every core: RSA-4096 private-key operations cost milliseconds each.
fn sign_all(
    key: &Arc<RsaSigningKey>,
    jobs: Vec<Job>,
) -> Result<Vec<(Ars, String, Option<SignedScope>)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = jobs.len().div_ceil(threads).max(1);
    let iat = time::OffsetDateTime::now_utc().unix_timestamp();
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|job| {
                            let mut payload = job.claims.clone();
                            if let Some(obj) = payload.as_object_mut() {
                                obj.insert("iat".into(), iat.into());
                                obj.insert("jti".into(), uuid::Uuid::new_v4().to_string().into());
                            }
                            let body = serde_json::to_vec(&payload).unwrap_or_default();
                            let signature = key.sign_compact(Some("JWT"), &body)?;
                            Ok((
                                job.authority.clone(),
                                job.scope.clone(),
                                Some(SignedScope {
                                    signature,
                                    claims_hash: job.claims_hash.clone(),
                                }),
                            ))
                        })
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| AppError::Internal("signing thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}
