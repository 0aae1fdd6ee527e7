//! Where a message comes from: DKIM signatures (RFC 6376), SPF (RFC 7208) for the
//! connecting address and DMARC (RFC 7489) alignment, through Stalwart's `mail-auth`.
//!
//! Keys come from DNS ([`Dns::System`]) or from a static table of TXT records (tests, closed
//! networks). With [`Dns::Off`] nothing is looked up: DKIM uses the static table alone and
//! SPF/DMARC are reported as not checked. Every result is only recorded: none drops a
//! message (an authority must accept what citizens send, signed or not).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::cache::NoCache;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, MessageAuthenticator, Parameters, ResolverCache,
    SpfResult, Txt,
};
use serde::Serialize;

/// How keys and policies are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dns {
    /// The system's resolver (`/etc/resolv.conf`); the static table is asked first.
    System,
    /// No lookups: the static table only.
    Off,
}

impl std::str::FromStr for Dns {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "system" => Ok(Dns::System),
            "off" => Ok(Dns::Off),
            other => Err(format!("{other:?} is not a DNS mode: use system or off")),
        }
    }
}

/// One result, as recorded in the check report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `pass`, `fail`, `softfail`, `neutral`, `none`, `temperror`, `permerror`, or
    /// `not-checked`.
    pub result: String,
    /// The domain the result is about (`d=` of a DKIM signature, the SPF or DMARC domain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    fn not_checked(why: &str) -> Check {
        Check {
            result: "not-checked".into(),
            domain: None,
            selector: None,
            detail: Some(why.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthReport {
    /// One entry per DKIM signature (empty: the message carries none).
    pub dkim: Vec<Check>,
    pub spf: Check,
    pub dmarc: Check,
}

/// The static TXT table (`name` → record), consulted before DNS.
struct StaticTxt {
    records: HashMap<Box<str>, Txt>,
    /// Misses are answered with an error instead of going to DNS.
    closed: bool,
}

impl ResolverCache<Box<str>, Txt> for StaticTxt {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        match self.records.get(name) {
            Some(t) => Some(t.clone()),
            None if self.closed => Some(Txt::Error(mail_auth::Error::Dns(
                mail_auth::DnsError::Resolver(
                    "DNS lookups are off and the key is not in the static table".into(),
                ),
            ))),
            None => None,
        }
    }
    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    resolver: MessageAuthenticator,
    txt: StaticTxt,
    dns: Dns,
    /// Our own host name, for SPF's `%{r}` macro.
    host: String,
    timeout: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("dns", &self.inner.dns)
            .field("static_records", &self.inner.txt.records.len())
            .finish()
    }
}

impl Authenticator {
    /// `static_records`: `(name, TXT value)`, e.g.
    /// `("sel._domainkey.example.org", "v=DKIM1; k=rsa; p=MIIB…")`.
    ///
    /// # Errors
    /// A record that is not a DKIM key record, or a system resolver that cannot be read.
    pub fn new(
        dns: Dns,
        static_records: &[(String, String)],
        host: &str,
        timeout: Duration,
    ) -> Result<Authenticator, String> {
        let mut records = HashMap::new();
        for (name, value) in static_records {
            let key = DomainKey::parse(value.as_bytes()).map_err(|e| {
                format!("the static DKIM record for {name} is not a key record: {e}")
            })?;
            let mut fqdn = name.trim().to_ascii_lowercase();
            if !fqdn.ends_with('.') {
                fqdn.push('.');
            }
            records.insert(fqdn.into_boxed_str(), Txt::from(key));
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout.min(Duration::from_secs(5));
        opts.attempts = 1;
        let resolver = match dns {
            Dns::System => MessageAuthenticator::new_system_conf().map_err(|e| {
                format!("the system's DNS resolver configuration cannot be read: {e}")
            })?,
            Dns::Off => {
                MessageAuthenticator::new(ResolverConfig::from_name_servers(Vec::new()), opts)
                    .map_err(|e| format!("resolver: {e}"))?
            }
        };
        Ok(Authenticator {
            inner: Arc::new(Inner {
                resolver,
                txt: StaticTxt {
                    records,
                    closed: dns == Dns::Off,
                },
                dns,
                host: host.to_owned(),
                timeout,
            }),
        })
    }

    /// DKIM, SPF and DMARC of one message, within the configured time (whatever is not done
    /// by then is `temperror`).
    pub async fn check(
        &self,
        raw: &[u8],
        client_ip: IpAddr,
        helo: &str,
        mail_from: &str,
    ) -> AuthReport {
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            return AuthReport {
                dkim: Vec::new(),
                spf: Check::not_checked("the message header cannot be parsed"),
                dmarc: Check::not_checked("the message header cannot be parsed"),
            };
        };
        let inner = &self.inner;
        let txt = &inner.txt;
        let dkim_out = match tokio::time::timeout(
            inner.timeout,
            inner.resolver.verify_dkim(params(&msg, txt)),
        )
        .await
        {
            Ok(out) => out,
            Err(_) => {
                return AuthReport {
                    dkim: vec![Check {
                        result: "temperror".into(),
                        domain: None,
                        selector: None,
                        detail: Some("key lookups took too long".into()),
                    }],
                    spf: Check::not_checked("time for the checks ran out"),
                    dmarc: Check::not_checked("time for the checks ran out"),
                };
            }
        };
        let dkim: Vec<Check> = dkim_out
            .iter()
            .map(|o| {
                let (result, detail) = dkim_result(o.result());
                Check {
                    result: result.into(),
                    domain: o.signature().map(|s| s.d.clone()),
                    selector: o.signature().map(|s| s.s.clone()),
                    detail,
                }
            })
            .collect();
        if inner.dns == Dns::Off {
            return AuthReport {
                dkim,
                spf: Check::not_checked("DNS lookups are off (RATHAUS_SMTP_DNS=off)"),
                dmarc: Check::not_checked("DNS lookups are off (RATHAUS_SMTP_DNS=off)"),
            };
        }
        let helo_domain = if helo.is_empty() { "unknown" } else { helo };
        let spf_params = SpfParameters::verify(client_ip, helo_domain, &inner.host, mail_from);
        let spf_out = match tokio::time::timeout(
            inner.timeout,
            inner.resolver.verify_spf(params(spf_params, txt)),
        )
        .await
        {
            Ok(o) => o,
            Err(_) => {
                return AuthReport {
                    dkim,
                    spf: Check {
                        result: "temperror".into(),
                        domain: None,
                        selector: None,
                        detail: Some("SPF lookups took too long".into()),
                    },
                    dmarc: Check::not_checked("time for the checks ran out"),
                };
            }
        };
        let spf = Check {
            result: spf_result(spf_out.result()).into(),
            domain: Some(spf_out.domain().to_owned()),
            selector: None,
            detail: spf_out.explanation().map(str::to_owned),
        };
        let mail_from_domain = mail_from
            .rsplit_once('@')
            .map(|(_, d)| d)
            .unwrap_or(helo_domain);
        let dmarc = match tokio::time::timeout(
            inner.timeout,
            inner.resolver.verify_dmarc(params(
                DmarcParameters::new(&msg, &dkim_out, mail_from_domain, &spf_out),
                txt,
            )),
        )
        .await
        {
            Ok(out) => {
                let (result, detail) = dmarc_result(&out.result());
                Check {
                    result: result.into(),
                    domain: Some(out.domain().to_owned()).filter(|d| !d.is_empty()),
                    selector: None,
                    detail,
                }
            }
            Err(_) => Check {
                result: "temperror".into(),
                domain: None,
                selector: None,
                detail: Some("DMARC lookup took too long".into()),
            },
        };
        AuthReport { dkim, spf, dmarc }
    }
}

type Params<'x, P> = Parameters<
    'x,
    P,
    StaticTxt,
    NoCache<Box<str>, mail_auth::RecordSet<mail_auth::MX>>,
    NoCache<Box<str>, mail_auth::RecordSet<std::net::Ipv4Addr>>,
    NoCache<Box<str>, mail_auth::RecordSet<std::net::Ipv6Addr>>,
    NoCache<IpAddr, mail_auth::RecordSet<Box<str>>>,
>;

fn params<P>(p: P, txt: &StaticTxt) -> Params<'_, P> {
    Parameters {
        params: p,
        cache_txt: Some(txt),
        cache_mx: None,
        cache_ptr: None,
        cache_ipv4: None,
        cache_ipv6: None,
    }
}

fn dkim_result(r: &DkimResult) -> (&'static str, Option<String>) {
    match r {
        DkimResult::Pass => ("pass", None),
        // RFC 6376 § 6.1.3: a body that does not match its hash is a failure (mail-auth
        // reports it as neutral).
        DkimResult::Neutral(
            e @ mail_auth::Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch),
        ) => ("fail", Some(e.to_string())),
        DkimResult::Neutral(e) => ("neutral", Some(e.to_string())),
        DkimResult::Fail(e) => ("fail", Some(e.to_string())),
        DkimResult::PermError(e) => ("permerror", Some(e.to_string())),
        DkimResult::TempError(e) => ("temperror", Some(e.to_string())),
        DkimResult::None => ("none", None),
    }
}

fn spf_result(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dmarc_result(r: &DmarcResult) -> (&'static str, Option<String>) {
    match r {
        DmarcResult::Pass => ("pass", None),
        DmarcResult::Fail(e) => ("fail", Some(e.to_string())),
        DmarcResult::TempError(e) => ("temperror", Some(e.to_string())),
        DmarcResult::PermError(e) => ("permerror", Some(e.to_string())),
        DmarcResult::None => ("none", None),
    }
}
