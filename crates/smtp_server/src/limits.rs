//! Per-client bookkeeping: concurrent connections and the message rate. Pure (the caller
//! passes the time); the server keeps each behind a mutex.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key a client is counted under: IPv4 addresses (also IPv4-mapped IPv6) as they are,
/// IPv6 by their /64 prefix — one host or site usually owns a whole /64 and could
/// otherwise rotate addresses to escape every per-address limit.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// All `max_connections` are in use.
    Total,
    /// This client has `max_connections_per_ip` open.
    PerClient,
}

/// Open connections, in total and per client.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: usize,
    max_per_client: usize,
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Connections {
    pub fn new(max_total: usize, max_per_client: usize) -> Self {
        Connections {
            max_total,
            max_per_client,
            total: 0,
            per_client: HashMap::new(),
        }
    }

    /// Counts a new connection from `ip` unless a limit is reached.
    pub fn open(&mut self, ip: IpAddr) -> Result<(), Refused> {
        if self.total >= self.max_total {
            return Err(Refused::Total);
        }
        let count = self.per_client.entry(client_key(ip)).or_insert(0);
        if *count >= self.max_per_client {
            if *count == 0 {
                self.per_client.remove(&client_key(ip));
            }
            return Err(Refused::PerClient);
        }
        *count = count.saturating_add(1);
        self.total = self.total.saturating_add(1);
        Ok(())
    }

    /// Uncounts a connection counted by [`Connections::open`].
    pub fn close(&mut self, ip: IpAddr) {
        let key = client_key(ip);
        if let Some(count) = self.per_client.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_client.remove(&key);
            }
            self.total = self.total.saturating_sub(1);
        }
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.total
    }
}

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per client: `per_minute` tokens, refilled evenly over a minute; each
/// transaction takes one.
#[derive(Debug)]
pub(crate) struct MessageRate {
    per_minute: u32,
    buckets: HashMap<IpAddr, Bucket>,
    last_sweep: Option<Instant>,
}

impl MessageRate {
    pub fn new(per_minute: u32) -> Self {
        MessageRate {
            per_minute,
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Takes a token for `ip` if there is one.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        self.sweep(now);
        let capacity = f64::from(self.per_minute);
        let bucket = self.buckets.entry(client_key(ip)).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let refill = elapsed * capacity / WINDOW.as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets clients whose bucket is full again (idle for a minute), once a minute.
    fn sweep(&mut self, now: Instant) {
        match self.last_sweep {
            Some(last) if now.saturating_duration_since(last) < WINDOW => {}
            _ => {
                self.buckets
                    .retain(|_, b| now.saturating_duration_since(b.at) < WINDOW);
                self.last_sweep = Some(now);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_v4_as_v4() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn connection_limits() {
        let mut c = Connections::new(3, 2);
        assert_eq!(c.open(ip("192.0.2.1")), Ok(()));
        assert_eq!(c.open(ip("192.0.2.1")), Ok(()));
        assert_eq!(c.open(ip("192.0.2.1")), Err(Refused::PerClient));
        assert_eq!(c.open(ip("2001:db8::1")), Ok(()));
        assert_eq!(c.open(ip("192.0.2.2")), Err(Refused::Total));
        c.close(ip("192.0.2.1"));
        assert_eq!(c.open(ip("192.0.2.2")), Ok(()));
        assert_eq!(c.open(ip("2001:db8::2")), Err(Refused::Total));
        c.close(ip("192.0.2.1"));
        c.close(ip("192.0.2.2"));
        c.close(ip("2001:db8::ffff"));
        assert_eq!(c.total(), 0);
        assert!(c.per_client.is_empty());
        // Closing what was never opened changes nothing.
        c.close(ip("198.51.100.1"));
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn zero_per_client_refuses_without_leaking_entries() {
        let mut c = Connections::new(10, 0);
        assert_eq!(c.open(ip("192.0.2.1")), Err(Refused::PerClient));
        assert!(c.per_client.is_empty());
    }

    #[test]
    fn message_rate_refills_over_the_minute() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(2);
        let a = ip("192.0.2.1");
        assert!(r.allow(a, t0));
        assert!(r.allow(a, t0));
        assert!(!r.allow(a, t0));
        assert!(
            r.allow(ip("192.0.2.2"), t0),
            "other clients are not affected"
        );
        // Two per minute: one token after 30 s.
        assert!(!r.allow(a, t0 + Duration::from_secs(29)));
        assert!(r.allow(a, t0 + Duration::from_secs(59)));
        assert!(!r.allow(a, t0 + Duration::from_secs(59)));
        // Never more than the capacity, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert!(r.allow(a, later));
        assert!(r.allow(a, later));
        assert!(!r.allow(a, later));
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let t0 = Instant::now();
        let mut r = MessageRate::new(10);
        for i in 0..100u8 {
            r.allow(IpAddr::from([10, 0, 0, i]), t0);
        }
        assert_eq!(r.tracked(), 100);
        r.allow(ip("192.0.2.1"), t0 + Duration::from_secs(61));
        assert_eq!(r.tracked(), 1);
    }
}
