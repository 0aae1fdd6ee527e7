//! Managing responsibility rules: validation, batch import, deletion.

use domain::{Ars, Leistungsschluessel, ResponsibleLevel};
use serde::Deserialize;
use verzeichnis::{Rule, RuleTarget};

use crate::{App, AppError, Result};

/// Most rules one import may carry; Lower Saxony's full set is in the tens of thousands.
pub const MAX_RULES_PER_IMPORT: usize = 500_000;

/// A rule as an administrator writes it (admin API, CLI, CSV), before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Leistungsschlüssel, e.g. `99115005104000`.
    #[serde(alias = "leistungsschluessel")]
    pub service: String,
    /// The ARS (2, 3, 5, 9 or 12 digits) of the area the rule covers.
    #[serde(alias = "gebiet_ars")]
    pub area: String,
    /// The responsible authority's ARS — or leave empty and give `level`.
    #[serde(default, alias = "zustaendig_ars")]
    pub authority: Option<String>,
    /// `gemeindeverband`, `kreis` or `land`: the authority of that level containing the place.
    #[serde(default, alias = "ebene")]
    pub level: Option<String>,
    #[serde(default, alias = "notiz")]
    pub note: Option<String>,
}

impl RuleInput {
    fn validate(&self, app: &App) -> Result<Rule> {
        let field =
            |field: &'static str, message: String| AppError::InvalidField { field, message };
        let service = Leistungsschluessel::parse(&self.service)
            .map_err(|e| field("service", e.to_string()))?;
        let dir = app.directory();
        if dir.service(&service).is_none() {
            return Err(field(
                "service",
                format!(
                    "{service} is not in the catalogue; import it first (rathaus import services)"
                ),
            ));
        }
        let area = Ars::parse(&self.area).map_err(|e| field("area", e.to_string()))?;
        let authority = self
            .authority
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let level = self
            .level
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let target = match (authority, level) {
            (Some(a), None) => {
                let ars = Ars::parse(a)
                    .map_err(|e| field("authority", e.to_string()))?
                    .significant();
                match dir.authority(&ars) {
                    Some(found) if found.active => RuleTarget::Authority(ars),
                    Some(_) => {
                        return Err(field(
                            "authority",
                            format!("authority {ars} is no longer active; name its successor"),
                        ));
                    }
                    None => {
                        return Err(field(
                            "authority",
                            format!("no authority with ARS {ars} in the directory"),
                        ));
                    }
                }
            }
            (None, Some(l)) => RuleTarget::Level(ResponsibleLevel::parse(l).ok_or_else(|| {
                field(
                    "level",
                    format!("{l:?} is not a level; use gemeindeverband, kreis or land"),
                )
            })?),
            _ => {
                return Err(AppError::Invalid(
                    "give exactly one of `authority` (an ARS) or `level` (gemeindeverband, kreis, land)".into(),
                ));
            }
        };
        let note = self
            .note
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if note.is_some_and(|n| n.chars().count() > 500) {
            return Err(field("note", "at most 500 characters".into()));
        }
        Ok(Rule {
            id: uuid::Uuid::new_v4(),
            service,
            area,
            target,
            note: note.map(str::to_owned),
        })
    }
}

impl App {
    /// Validates and stores rules in one transaction: all or nothing.
    pub async fn add_rules(
        &self,
        inputs: &[RuleInput],
        actor: &str,
        replace: bool,
    ) -> Result<Vec<Rule>> {
        if inputs.len() > MAX_RULES_PER_IMPORT {
            return Err(AppError::Invalid(format!(
                "at most {MAX_RULES_PER_IMPORT} rules at once"
            )));
        }
        let rules = inputs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.validate(self).map_err(|e| match inputs.len() {
                    1 => e,
                    _ => AppError::Invalid(format!("rule {}: {e}", i + 1)),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.store.insert_rules(&rules, actor, replace).await?;
        self.after_change().await?;
        Ok(rules)
    }

    pub async fn delete_rule(&self, id: uuid::Uuid, actor: &str) -> Result<Rule> {
        let rule = self
            .store
            .delete_rule(id, actor)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no rule with id {id}")))?;
        self.after_change().await?;
        Ok(rule)
    }

    /// Imports rules from CSV with the columns `leistungsschluessel,gebiet_ars,zustaendig_ars,ebene[,notiz]`.
    pub async fn import_rules_csv(
        &self,
        csv_text: &[u8],
        actor: &str,
        replace: bool,
    ) -> Result<usize> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(csv_text);
        let mut inputs = Vec::new();
        for (i, row) in reader.deserialize::<RuleInput>().enumerate() {
            if i >= MAX_RULES_PER_IMPORT {
                return Err(AppError::Invalid(format!(
                    "at most {MAX_RULES_PER_IMPORT} rules at once"
                )));
            }
            inputs.push(row.map_err(|e| AppError::Invalid(format!("line {}: {e}", i + 2)))?);
        }
        Ok(self.add_rules(&inputs, actor, replace).await?.len())
    }
}
