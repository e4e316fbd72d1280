//! Where a webhook may be sent: http or https URLs whose host resolves to
//! public addresses only. A receiver on a private, loopback or link-local
//! address (the cloud metadata service, the database, talky itself) is
//! refused unless `webhooks.allow_private_targets` (tests and the demo,
//! whose receivers are on loopback).
//!
//! Checked twice: when the endpoint is created (a 422 naming `url`), and
//! at every delivery, since DNS may change. At delivery the check is the
//! HTTP client's own resolver ([`GuardedResolver`]), so the address
//! checked is the address connected to (no window for DNS rebinding);
//! literal IPs, which the client does not resolve, are checked by
//! [`check_literal`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL.
    #[error("not a valid URL: {0}")]
    Invalid(String),
    /// Not http or https.
    #[error("must be an http:// or https:// URL")]
    Scheme,
    /// Longer than [`MAX_URL_LEN`].
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    /// User name or password in the URL (they would travel in clear text
    /// in every delivery's log line and listing).
    #[error("must not carry a user name or password")]
    Credentials,
    /// The host did not resolve.
    #[error("host {0} does not resolve")]
    Unresolvable(String),
    /// The host is, or resolves to, an address that is not public.
    #[error(
        "host {0} is a private, loopback or link-local address (refused unless webhooks.allow_private_targets)"
    )]
    Private(String),
}

/// The URL, if it has an acceptable shape (scheme, host, no credentials).
pub fn parse(url: &str) -> Result<Url, TargetError> {
    if url.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    let parsed = Url::parse(url.trim()).map_err(|e| TargetError::Invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if parsed.host().is_none() {
        return Err(TargetError::Invalid("no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    Ok(parsed)
}

/// Whether an address may receive webhooks: not loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast, broadcast,
/// documentation, benchmarking or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: an IPv4 inside
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1))
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64.0.0/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || o[0] >= 240) // reserved
}

/// The literal IP of a URL's host, if it is one.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

/// At delivery: refuses a URL whose host is a literal address that is not
/// public (names are checked by [`GuardedResolver`] as they resolve).
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), TargetError> {
    match literal_ip(url) {
        Some(ip) if !allow_private && !is_public(ip) => Err(TargetError::Private(ip.to_string())),
        _ => Ok(()),
    }
}

/// At creation: the URL's shape, and every address its host resolves to
/// (within `timeout`) must be public unless `allow_private`.
pub async fn check(url: &str, allow_private: bool, timeout: Duration) -> Result<Url, TargetError> {
    let parsed = parse(url)?;
    check_literal(&parsed, allow_private)?;
    if literal_ip(&parsed).is_some() || allow_private {
        return Ok(parsed);
    }
    let host = parsed.host_str().unwrap_or_default().to_string();
    let addrs = resolve(&host, timeout).await?;
    if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(TargetError::Private(format!("{host} ({})", bad.ip())));
    }
    Ok(parsed)
}

async fn resolve(host: &str, timeout: Duration) -> Result<Vec<SocketAddr>, TargetError> {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(TargetError::Unresolvable(host.to_string()))
            } else {
                Ok(addrs)
            }
        }
        _ => Err(TargetError::Unresolvable(host.to_string())),
    }
}

/// The delivery client's DNS resolver: answers only with public addresses
/// (unless `allow_private`), so a name that resolves to a private one at
/// delivery time is refused before any connection.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    /// `webhooks.allow_private_targets`.
    pub allow_private: bool,
    /// Bound on one resolution.
    pub timeout: Duration,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = resolve(&host, this.timeout).await?;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| this.allow_private || is_public(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(TargetError::Private(host))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert!(parse("https://example.com/hooks?a=1").is_ok());
        assert!(parse("http://example.com:8080/").is_ok());
        assert_eq!(
            parse("ftp://example.com/").unwrap_err(),
            TargetError::Scheme
        );
        assert_eq!(
            parse("file:///etc/passwd").unwrap_err(),
            TargetError::Scheme
        );
        assert!(matches!(parse("not a url"), Err(TargetError::Invalid(_))));
        assert!(matches!(parse(""), Err(TargetError::Invalid(_))));
        assert_eq!(
            parse("https://user:pw@example.com/").unwrap_err(),
            TargetError::Credentials
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(parse(&long).unwrap_err(), TargetError::TooLong);
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn creation_checks_literals_and_names() {
        let t = Duration::from_secs(5);
        assert!(matches!(
            check("http://127.0.0.1:9/x", false, t).await,
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://[::1]:9/x", false, t).await,
            Err(TargetError::Private(_))
        ));
        assert!(matches!(
            check("http://169.254.169.254/latest", false, t).await,
            Err(TargetError::Private(_))
        ));
        // `localhost` resolves (from /etc/hosts) to loopback only.
        assert!(matches!(
            check("http://localhost:9/x", false, t).await,
            Err(TargetError::Private(_))
        ));
        assert!(check("http://127.0.0.1:9/x", true, t).await.is_ok());
        assert!(check("http://93.184.216.34/x", false, t).await.is_ok());
        assert!(matches!(
            check("http://no-such-host.invalid/x", false, t).await,
            Err(TargetError::Unresolvable(_))
        ));
    }

    #[tokio::test]
    async fn the_delivery_resolver_drops_private_answers() {
        use reqwest::dns::Resolve;
        let guarded = GuardedResolver {
            allow_private: false,
            timeout: Duration::from_secs(5),
        };
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        assert!(guarded.resolve(name).await.is_err());
        let open = GuardedResolver {
            allow_private: true,
            ..guarded
        };
        let name: reqwest::dns::Name = "localhost".parse().expect("name");
        let addrs: Vec<_> = open.resolve(name).await.expect("resolves").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
