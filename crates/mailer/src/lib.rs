//! Outbound e-mail: the worker that sends what the application put into the outbox, over
//! SMTP to the configured relay (`RATHAUS_SMTP_URL`).
//!
//! Must never: send a mail that is not in the outbox (every mail is durable before it is
//! sent), or log a mail's body (it may carry a one-time link).

mod dkim;

use std::sync::Arc;

pub use dkim::DkimSigner;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use store::{OutboxMail, Store};
use time::OffsetDateTime;
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    #[error("invalid sender address {0:?}: {1}")]
    Sender(String, String),
}

#[derive(Debug, Clone)]
pub struct MailerConfig {
    /// The relay, as lettre 0.11 reads it (`scheme://user:pass@host:port/ehlo-name?tls=…`):
    ///
    /// - `smtps://host:port` — implicit TLS (default port 465). Recommended.
    /// - `smtp://host:port?tls=required` — STARTTLS, and fail if the relay does not offer it
    ///   (default port 587).
    /// - `smtp://host:port?tls=opportunistic` — STARTTLS if offered, else plain text: open to
    ///   a man in the middle.
    /// - `smtp://host:port` — plain text, never TLS, not even if offered (default port 25):
    ///   only for a relay on the same host or a trusted network, and for tests. There is no
    ///   `tls=none`; any other `tls` value is refused.
    ///
    /// User and password (percent-encoded) in the URL if the relay needs them.
    pub smtp_url: String,
    /// The sender, e.g. `Rathaus <noreply@example.org>`.
    pub from: String,
    /// Keep the text of sent mails (demo mode shows them); otherwise it is dropped once sent.
    pub keep_sent_bodies: bool,
    /// Sign every mail with DKIM (`RATHAUS_DKIM_KEY_FILE`, `_SELECTOR`, `_DOMAIN`).
    pub dkim: Option<Arc<DkimSigner>>,
}

/// Sends the outbox. One per process; several processes share the work through the outbox's
/// leases.
pub struct Mailer {
    store: Store,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    keep_sent_bodies: bool,
    wake: Arc<Notify>,
    dkim: Option<Arc<DkimSigner>>,
}

/// Attempts before a mail is given up (and shown as failed to the admin).
const MAX_ATTEMPTS: i64 = 10;
const LEASE: time::Duration = time::Duration::minutes(2);
const POLL: Duration = Duration::from_secs(5);

impl Mailer {
    pub fn new(
        store: Store,
        config: &MailerConfig,
        wake: Arc<Notify>,
    ) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|e| MailerError::Url(e.to_string()))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                MailerError::Sender(config.from.clone(), e.to_string())
            })?;
        Ok(Mailer {
            store,
            transport,
            from,
            keep_sent_bodies: config.keep_sent_bodies,
            dkim: config.dkim.clone(),
            wake,
        })
    }

    /// Runs until the task is aborted: sends every due mail, then sleeps until woken or the
    /// next poll.
    pub async fn run(self) {
        loop {
            loop {
                match self
                    .store
                    .claim_mail(OffsetDateTime::now_utc(), LEASE)
                    .await
                {
                    Ok(Some(mail)) => self.deliver(mail).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "mail outbox unavailable");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn deliver(&self, mail: OutboxMail) {
        let result = match self.build(&mail) {
            Ok(message) => {
                let raw = match &self.dkim {
                    Some(signer) => {
                        let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
                        signer.sign(&message.formatted(), now)
                    }
                    None => Ok(message.formatted()),
                };
                match raw {
                    Ok(raw) => self
                        .transport
                        .send_raw(message.envelope(), &raw)
                        .await
                        .map(|_| ())
                        .map_err(|e| (e.to_string(), e.is_permanent())),
                    Err(e) => Err((e, true)),
                }
            }
            Err(e) => Err((e, true)),
        };
        let now = OffsetDateTime::now_utc();
        let outcome = match result {
            Ok(()) => {
                tracing::info!(mail = %mail.id, purpose = %mail.purpose, "mail sent");
                self.store
                    .mail_sent(&mail.id, now, self.keep_sent_bodies)
                    .await
            }
            Err((error, permanent)) => {
                let give_up = permanent || mail.attempts >= MAX_ATTEMPTS;
                tracing::warn!(mail = %mail.id, attempts = mail.attempts, give_up, %error, "mail not sent");
                let retry = (!give_up).then(|| now + backoff(mail.attempts));
                self.store.mail_failed(&mail.id, &error, retry).await
            }
        };
        if let Err(e) = outcome {
            // The lease runs out and the mail is tried again: sent twice at worst, never lost.
            tracing::warn!(mail = %mail.id, error = %e, "could not record the mail's outcome");
        }
    }

    fn build(&self, mail: &OutboxMail) -> Result<Message, String> {
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| format!("recipient: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .header(ContentType::TEXT_PLAIN)
            // Answers to these mails should not trigger auto-replies loops (RFC 3834).
            .header(AutoSubmitted)
            .body(mail.body_text.clone())
            .map_err(|e| e.to_string())
    }
}

/// 1, 2, 4, … minutes, at most 6 hours.
fn backoff(attempts: i64) -> time::Duration {
    let exp = u32::try_from(attempts.clamp(1, 10) - 1).unwrap_or(0);
    time::Duration::minutes((1i64 << exp).min(360))
}

#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_stops() {
        assert_eq!(super::backoff(1), time::Duration::minutes(1));
        assert_eq!(super::backoff(3), time::Duration::minutes(4));
        assert_eq!(super::backoff(10), time::Duration::minutes(360));
    }
}
