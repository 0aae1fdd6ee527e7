//! Legal pages per authority (Impressum, Datenschutzerklärung, Erklärung zur
//! Barrierefreiheit) and the barrier feedback that BITV 2.0 requires.

use domain::Ars;
use serde::Serialize;
use sqlx::Row;

use crate::{Result, Store, StoreError, conflict, now};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegalPage {
    pub content: String,
    pub demo: bool,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    pub id: String,
    pub authority: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub message: String,
    pub page: Option<String>,
    pub created_at: String,
}

impl Store {
    pub async fn legal_page(&self, ars: &Ars, kind: &str, lang: &str) -> Result<Option<LegalPage>> {
        let row = sqlx::query(
            "SELECT content, demo, updated_at FROM legal_pages \
             WHERE authority_ars = $1 AND kind = $2 AND lang = $3",
        )
        .bind(ars.as_str())
        .bind(kind)
        .bind(lang)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LegalPage {
                content: r.try_get(0)?,
                demo: r.try_get::<i64, _>(1)? != 0,
                updated_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Sets a page; `only_if_missing` keeps what an administrator wrote (used by the demo).
    pub async fn set_legal_page(
        &self,
        ars: &Ars,
        kind: &str,
        lang: &str,
        content: &str,
        demo: bool,
        only_if_missing: bool,
    ) -> Result<()> {
        let sql = if only_if_missing {
            "INSERT INTO legal_pages (authority_ars, kind, lang, content, demo, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (authority_ars, kind, lang) DO NOTHING"
        } else {
            "INSERT INTO legal_pages (authority_ars, kind, lang, content, demo, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (authority_ars, kind, lang) \
             DO UPDATE SET content = excluded.content, demo = excluded.demo, updated_at = excluded.updated_at"
        };
        sqlx::query(sql)
            .bind(ars.as_str())
            .bind(kind)
            .bind(lang)
            .bind(content)
            .bind(i64::from(demo))
            .bind(now())
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, || format!("authority {ars} is unknown")))?;
        Ok(())
    }

    /// Sets many pages in one transaction, keeping any page that exists (the demo seeding).
    pub async fn set_legal_pages_if_missing(
        &self,
        pages: &[(Ars, &str, &str, String)],
        demo: bool,
    ) -> Result<u64> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for (ars, kind, lang, content) in pages {
            n += sqlx::query(
                "INSERT INTO legal_pages (authority_ars, kind, lang, content, demo, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (authority_ars, kind, lang) DO NOTHING",
            )
            .bind(ars.as_str())
            .bind(*kind)
            .bind(*lang)
            .bind(content)
            .bind(i64::from(demo))
            .bind(&at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    pub async fn add_feedback(
        &self,
        ars: &Ars,
        name: Option<&str>,
        email: Option<&str>,
        message: &str,
        page: Option<&str>,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO accessibility_feedback (id, authority_ars, name, email, message, page, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(ars.as_str())
        .bind(name)
        .bind(email)
        .bind(message)
        .bind(page)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, || format!("authority {ars} is unknown")))?;
        Ok(id)
    }

    pub async fn list_feedback(
        &self,
        ars: Option<&Ars>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Feedback>> {
        let rows = sqlx::query(
            "SELECT id, authority_ars, name, email, message, page, created_at FROM accessibility_feedback \
             WHERE ($1 = '' OR authority_ars = $1) ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(ars.map(Ars::as_str).unwrap_or(""))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Feedback {
                    id: r.try_get(0)?,
                    authority: r.try_get(1)?,
                    name: r.try_get(2)?,
                    email: r.try_get(3)?,
                    message: r.try_get(4)?,
                    page: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
