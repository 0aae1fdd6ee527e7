//! Where clamd listens: `unix:///path/to/clamd.sock` or `tcp://host:port`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Longest Unix socket path the kernel accepts (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;

/// A parsed clamd address. `Display` gives back the URL form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClamdUrl {
    /// `unix:///absolute/path/clamd.sock` — the path is taken literally (no %-decoding).
    Unix(PathBuf),
    /// `tcp://host:port` — a host name, an IPv4 address or a bracketed IPv6 address.
    Tcp { host: String, port: u16 },
}

/// Why a clamd URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid clamd URL {url:?}: {reason}")]
pub struct UrlError {
    pub url: String,
    pub reason: &'static str,
}

impl ClamdUrl {
    /// Parse `unix:///path` or `tcp://host:port`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let fail = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        if let Some(path) = url.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(fail("no socket path (expected unix:///path/to/clamd.sock)"));
            }
            if !path.starts_with('/') {
                return Err(fail(
                    "the socket path must be absolute (expected unix:///path/to/clamd.sock)",
                ));
            }
            if path.ends_with('/') {
                return Err(fail("the socket path names a directory"));
            }
            if path.contains('\0') {
                return Err(fail("the socket path contains a NUL byte"));
            }
            if path.len() > MAX_UNIX_PATH {
                return Err(fail("the socket path is longer than 107 bytes"));
            }
            return Ok(ClamdUrl::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("tcp://") {
            let authority = rest.strip_suffix('/').unwrap_or(rest);
            if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
                return Err(fail(
                    "only host and port are allowed (expected tcp://host:port)",
                ));
            }
            let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
                let (v6, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| fail("unclosed '[' in an IPv6 address"))?;
                if v6.is_empty()
                    || !v6
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                {
                    return Err(fail("invalid IPv6 address"));
                }
                let port = after
                    .strip_prefix(':')
                    .ok_or_else(|| fail("no port (expected tcp://host:port)"))?;
                (v6, port)
            } else {
                let (host, port) = authority
                    .rsplit_once(':')
                    .ok_or_else(|| fail("no port (expected tcp://host:port)"))?;
                if host.contains(':') {
                    return Err(fail(
                        "an IPv6 address must be in brackets: tcp://[::1]:3310",
                    ));
                }
                (host, port)
            };
            if host.is_empty() {
                return Err(fail("no host (expected tcp://host:port)"));
            }
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail("the port must be a number (expected tcp://host:port)"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| fail("the port must be between 1 and 65535"))?;
            if port == 0 {
                return Err(fail("the port must be between 1 and 65535"));
            }
            return Ok(ClamdUrl::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        Err(fail(
            "expected unix:///path/to/clamd.sock or tcp://host:port",
        ))
    }

    /// The socket path of a `unix://` URL.
    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            ClamdUrl::Unix(path) => Some(path),
            ClamdUrl::Tcp { .. } => None,
        }
    }
}

impl FromStr for ClamdUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        ClamdUrl::parse(s)
    }
}

impl fmt::Display for ClamdUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClamdUrl::Unix(path) => write!(f, "unix://{}", path.display()),
            ClamdUrl::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            ClamdUrl::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_urls() {
        let url = ClamdUrl::parse("unix:///run/clamav/clamd.ctl").expect("valid");
        assert_eq!(url, ClamdUrl::Unix(PathBuf::from("/run/clamav/clamd.ctl")));
        assert_eq!(url.unix_path(), Some(Path::new("/run/clamav/clamd.ctl")));
        assert_eq!(url.to_string(), "unix:///run/clamav/clamd.ctl");
    }

    #[test]
    fn parses_tcp_urls() {
        let url: ClamdUrl = "tcp://clamav.internal:3310".parse().expect("valid");
        assert_eq!(
            url,
            ClamdUrl::Tcp {
                host: "clamav.internal".into(),
                port: 3310
            }
        );
        assert_eq!(url.to_string(), "tcp://clamav.internal:3310");
        assert_eq!(url.unix_path(), None);

        let url = ClamdUrl::parse("tcp://127.0.0.1:3310/").expect("trailing slash is fine");
        assert_eq!(url.to_string(), "tcp://127.0.0.1:3310");

        let url = ClamdUrl::parse("tcp://[::1]:3310").expect("IPv6");
        assert_eq!(
            url,
            ClamdUrl::Tcp {
                host: "::1".into(),
                port: 3310
            }
        );
        assert_eq!(url.to_string(), "tcp://[::1]:3310");
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        let long = format!("unix:///{}", "a".repeat(120));
        for (url, reason_part) in [
            ("", "expected unix"),
            ("/run/clamav/clamd.ctl", "expected unix"),
            ("http://localhost:3310", "expected unix"),
            ("unix:/run/clamd.sock", "expected unix"),
            ("unix://", "no socket path"),
            ("unix://run/clamd.sock", "absolute"),
            ("unix:///run/clamav/", "directory"),
            ("unix:///run/a\0b", "NUL"),
            (long.as_str(), "107 bytes"),
            ("tcp://localhost", "no port"),
            ("tcp://localhost:", "must be a number"),
            ("tcp://localhost:http", "must be a number"),
            ("tcp://localhost:0", "between 1 and 65535"),
            ("tcp://localhost:65536", "between 1 and 65535"),
            ("tcp://:3310", "no host"),
            ("tcp://localhost:3310/scan", "only host and port"),
            ("tcp://user@localhost:3310", "only host and port"),
            ("tcp://::1:3310", "brackets"),
            ("tcp://[::1:3310", "unclosed"),
            ("tcp://[::1]", "no port"),
            ("tcp://[zz]:3310", "IPv6"),
        ] {
            let err = ClamdUrl::parse(url).expect_err(url);
            assert!(
                err.reason.contains(reason_part),
                "{url:?}: got {:?}, wanted {reason_part:?}",
                err.reason
            );
            assert!(err.to_string().starts_with("invalid clamd URL"));
        }
    }
}
