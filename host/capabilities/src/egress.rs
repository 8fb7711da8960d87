//! Egress policy: which hosts a connection may reach, and over what.
//!
//! Egress is denied by default (DESIGN decision 5). A connection may reach exactly the hosts on
//! its [`EgressPolicy`]; each is reached over https unless its rule allows plain http, and only at
//! global (public) addresses unless its rule allows private ones. The host resolves DNS itself
//! through [`EgressResolver`], so the address that was checked is the address that is connected
//! to: a name that resolves to 127.0.0.1 or 169.254.169.254 is refused like the literal.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

pub use address::is_global;

mod address;

/// One host a connection may reach.
///
/// Rules match exactly: `api.zendesk.com` does not allow `evil.api.zendesk.com`, and a rule
/// names one port: `127.0.0.1:9000` allows that port only, and a rule without a port allows
/// only the scheme's default (443 for https, 80 for http where `allow_http` is set). Its flags
/// hold for exactly that host and port. In a flow file a rule is written
/// `{ host = "127.0.0.1:9000", allow_http = true, allow_private = true }`; IPv6 literals are
/// written in brackets; `credential = false` allows the host without sending it the
/// connection's credential (a CDN, a storage host behind signed URLs).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "HostRuleToml")]
pub struct HostRule {
    host: String,
    port: Option<u16>,
    allow_http: bool,
    allow_private: bool,
    credential: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostRuleToml {
    host: String,
    #[serde(default)]
    allow_http: bool,
    #[serde(default)]
    allow_private: bool,
    #[serde(default = "yes")]
    credential: bool,
}

fn yes() -> bool {
    true
}

impl TryFrom<HostRuleToml> for HostRule {
    type Error = EgressError;

    fn try_from(t: HostRuleToml) -> Result<Self, Self::Error> {
        Ok(HostRule::parse(&t.host)?
            .allow_http(t.allow_http)
            .allow_private(t.allow_private)
            .credential(t.credential))
    }
}

impl HostRule {
    /// Parses `host`, `host:port`, an IP literal, `[v6]:port`, or a URL (`https://host:port/path`,
    /// of which only host and port are kept) into a rule that allows https to global addresses.
    pub fn parse(spec: &str) -> Result<Self, EgressError> {
        let invalid = |reason: &str| EgressError::InvalidHost {
            host: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.contains('*') {
            return Err(invalid(
                "wildcards are not supported; list each host exactly",
            ));
        }
        let url_text = if trimmed.contains("://") {
            trimmed.to_owned()
        } else if trimmed.parse::<Ipv6Addr>().is_ok() {
            format!("https://[{trimmed}]/")
        } else {
            format!("https://{trimmed}/")
        };
        let url = Url::parse(&url_text).map_err(|e| invalid(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("it must not contain credentials"));
        }
        let host = url_host(&url).ok_or_else(|| invalid("it has no host name"))?;
        if !trimmed.contains("://") && (url.path() != "/" || url.query().is_some()) {
            return Err(invalid("give a host name, host:port or a URL"));
        }
        Ok(Self {
            host,
            port: url.port(),
            allow_http: false,
            allow_private: false,
            credential: true,
        })
    }

    /// Whether requests to this host carry the connection's credential (the default).
    pub fn credential(mut self, send: bool) -> Self {
        self.credential = send;
        self
    }

    /// `host[:port]` as a URL writes it (IPv6 in brackets).
    pub fn address(&self) -> String {
        display_host(&self.host, self.port)
    }

    /// Whether requests to this host carry the connection's credential.
    pub fn receives_credential(&self) -> bool {
        self.credential
    }

    /// Whether the rule allows `port` for `scheme`: its own port, or the scheme's default when
    /// it names none.
    fn allows_port(&self, scheme: &str, port: u16) -> bool {
        match self.port {
            Some(p) => p == port,
            None => port == default_port(scheme),
        }
    }

    /// Restricts the rule to one port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Allows plain http to this host (https is always allowed).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Allows this host to be reached at non-global addresses (loopback, private ranges), as
    /// local emulators need.
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// The normalized host: lowercase name without trailing dot, or a canonical IP literal.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The only port allowed, if the rule names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether plain http is allowed.
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// Whether non-global addresses are allowed.
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address())?;
        if self.allow_http {
            f.write_str(" (http allowed)")?;
        }
        if self.allow_private {
            f.write_str(" (private addresses allowed)")?;
        }
        if !self.credential {
            f.write_str(" (no credential)")?;
        }
        Ok(())
    }
}

/// A malformed host in a connection's egress configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// A host rule could not be parsed.
    #[error("invalid egress host {host:?}: {reason}")]
    InvalidHost {
        /// The text as given.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a destination was refused. Its text is what the guest sees inside `HttpError::Denied`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// The host is not on the connection's allowlist.
    #[error(
        "host {host} is not allowed for connection {connection:?}; allowed hosts: {allowed}. Add it to the connection's egress list in the flow file if it is expected"
    )]
    HostNotAllowed {
        /// The refused host (with port if one was given).
        host: String,
        /// The connection's name.
        connection: String,
        /// The allowed hosts, for the message.
        allowed: String,
    },
    /// The scheme is not http(s), or http to a host that only allows https.
    #[error("{scheme}:// to {host} is not allowed for connection {connection:?}: {reason}")]
    SchemeNotAllowed {
        /// The refused scheme.
        scheme: String,
        /// The host.
        host: String,
        /// The connection's name.
        connection: String,
        /// Why, e.g. "only https is allowed unless the host rule sets allow_http".
        reason: String,
    },
    /// The destination address is loopback, private, link-local, metadata or otherwise
    /// non-global, and the host rule does not set `allow_private`.
    #[error(
        "host {host} is at non-global address(es) {addresses} (loopback, private, link-local or reserved), which connection {connection:?} may not reach; set allow_private on that host's egress rule if this is intended (e.g. a local emulator)"
    )]
    NonGlobalAddress {
        /// The host as requested.
        host: String,
        /// The refused addresses.
        addresses: String,
        /// The connection's name.
        connection: String,
    },
    /// The host name did not resolve.
    #[error("host {host} could not be resolved: {reason}")]
    Unresolvable {
        /// The host.
        host: String,
        /// The resolver's error.
        reason: String,
    },
}

/// A host a connection reaches because the flow file implies it: expanded from one of the
/// plugin's host templates over the connection's config, or the host of the auth's token URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedHost {
    /// A URL or `host[:port]`.
    pub host: String,
    /// Where it came from, for operators reading the host list (`template https://{subdomain}.zendesk.com`).
    pub from: String,
}

impl DerivedHost {
    /// `host`, derived from `from`.
    pub fn new(host: impl Into<String>, from: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            from: from.into(),
        }
    }
}

impl From<&str> for DerivedHost {
    fn from(host: &str) -> Self {
        Self::new(host, "derived")
    }
}

/// One host of a connection's allowlist with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyEntry {
    /// The rule, flags merged over every source.
    pub rule: HostRule,
    /// `egress` for the flow's list, otherwise what it was derived from.
    pub sources: Vec<String>,
}

/// The set of hosts one connection may reach.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    connection: String,
    /// Keyed by (host, port); rules for the same key are merged by OR-ing their flags.
    rules: BTreeMap<(String, Option<u16>), PolicyEntry>,
}

impl EgressPolicy {
    /// Builds the policy for `connection` from the explicit rules of the flow file and the hosts
    /// derived from it (the plugin's templates over the connection's config, the token URL).
    ///
    /// Derived hosts (URLs or bare hosts) only ever allow https to global addresses: a plugin
    /// cannot grant itself plain http or private addresses; only the flow file can.
    pub fn new(
        connection: impl Into<String>,
        explicit: impl IntoIterator<Item = HostRule>,
        derived: impl IntoIterator<Item = impl Into<DerivedHost>>,
    ) -> Result<Self, EgressError> {
        let mut policy = Self {
            connection: connection.into(),
            rules: BTreeMap::new(),
        };
        for rule in explicit {
            policy.add(rule, "egress");
        }
        for host in derived {
            let host = host.into();
            policy.add(HostRule::parse(&host.host)?, &host.from);
        }
        Ok(policy)
    }

    fn add(&mut self, rule: HostRule, source: &str) {
        let key = (rule.host.clone(), rule.port);
        match self.rules.get_mut(&key) {
            Some(existing) => {
                existing.rule.allow_http |= rule.allow_http;
                existing.rule.allow_private |= rule.allow_private;
                // The credential goes to a host only if every source agrees: an operator's
                // `credential = false` is not undone by a template naming the same host.
                existing.rule.credential &= rule.credential;
                if !existing.sources.iter().any(|s| s == source) {
                    existing.sources.push(source.to_owned());
                }
            }
            None => {
                self.rules.insert(
                    key,
                    PolicyEntry {
                        rule,
                        sources: vec![source.to_owned()],
                    },
                );
            }
        }
    }

    /// Every host with where it came from, sorted by host.
    pub fn entries(&self) -> impl Iterator<Item = &PolicyEntry> {
        self.rules.values()
    }

    /// Whether any rule allows private addresses, i.e. whether a client that may connect to
    /// them is needed at all.
    pub fn any_private(&self) -> bool {
        self.rules.values().any(|e| e.rule.allow_private)
    }

    /// The connection this policy belongs to.
    pub fn connection(&self) -> &str {
        &self.connection
    }

    /// Every rule, sorted by host.
    pub fn rules(&self) -> impl Iterator<Item = &HostRule> {
        self.rules.values().map(|e| &e.rule)
    }

    /// The rule that allows `host` on `port` for `scheme`: the rule naming that port, or a
    /// port-less rule when `port` is the scheme's default. Nothing else: a port-less rule does
    /// not open the host's other ports.
    pub fn rule_for(&self, scheme: &str, host: &str, port: u16) -> Option<&HostRule> {
        let host = normalize_host(host);
        [Some(port), None]
            .into_iter()
            .filter_map(|p| self.rules.get(&(host.clone(), p)))
            .map(|e| &e.rule)
            .find(|r| r.allows_port(scheme, port))
    }

    /// Whether any rule names `host` (on any port), and if so whether any of them allows private
    /// addresses. The resolver sees only names, not ports: it is asked only for requests whose
    /// own rule (host and port) was checked to allow private addresses, see [`EgressResolver`].
    fn name_allows_private(&self, host: &str) -> Option<bool> {
        let host = normalize_host(host);
        self.rules
            .range((host.clone(), None)..)
            .take_while(|((h, _), _)| *h == host)
            .map(|(_, e)| e.rule.allow_private)
            .reduce(|a, b| a || b)
    }

    /// Whether the destination of `url` is allowed: scheme, host, port, and for IP literals the
    /// address itself (names are checked again when resolved, by [`EgressResolver`]).
    pub fn check_url(&self, url: &Url) -> Result<&HostRule, EgressDenied> {
        let scheme = url.scheme();
        let host = url_host(url).unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(0);
        let shown = display_host(&host, url.port());
        if scheme != "https" && scheme != "http" {
            return Err(EgressDenied::SchemeNotAllowed {
                scheme: scheme.to_owned(),
                host: shown,
                connection: self.connection.clone(),
                reason: "only https (and http where a host rule allows it) can be used".into(),
            });
        }
        let rule =
            self.rule_for(scheme, &host, port)
                .ok_or_else(|| EgressDenied::HostNotAllowed {
                    host: shown.clone(),
                    connection: self.connection.clone(),
                    allowed: self.allowed_list(),
                })?;
        if scheme == "http" && !rule.allow_http {
            return Err(EgressDenied::SchemeNotAllowed {
                scheme: scheme.to_owned(),
                host: shown,
                connection: self.connection.clone(),
                reason: "only https is allowed unless the host's egress rule sets allow_http"
                    .into(),
            });
        }
        if let Ok(ip) = host.parse::<IpAddr>()
            && !rule.allow_private
            && !is_global(ip)
        {
            return Err(EgressDenied::NonGlobalAddress {
                host: shown,
                addresses: ip.to_string(),
                connection: self.connection.clone(),
            });
        }
        Ok(rule)
    }

    /// Whether a rule names exactly the host and port of `spec` (a URL or `host[:port]`).
    pub fn lists(&self, spec: &str) -> bool {
        HostRule::parse(spec).is_ok_and(|r| self.rules.contains_key(&(r.host, r.port)))
    }

    /// Whether `url` (scheme, host and port) is allowed.
    pub fn allows_host(&self, url: &Url) -> bool {
        self.check_url(url).is_ok()
    }

    fn allowed_list(&self) -> String {
        if self.rules.is_empty() {
            return "none".into();
        }
        self.rules
            .values()
            .map(|e| display_host(&e.rule.host, e.rule.port))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The host of a URL, normalized like rule hosts.
pub(crate) fn url_host(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => Some(normalize_host(d)),
        url::Host::Ipv4(a) => Some(a.to_string()),
        url::Host::Ipv6(a) => Some(a.to_string()),
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let unbracketed = host.trim_start_matches('[').trim_end_matches(']');
    match unbracketed.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host,
    }
}

/// The port a URL of `scheme` uses when it names none.
fn default_port(scheme: &str) -> u16 {
    match scheme {
        "http" => 80,
        _ => 443,
    }
}

pub(crate) fn display_host(host: &str, port: Option<u16>) -> String {
    match (host.contains(':'), port) {
        (true, Some(p)) => format!("[{host}]:{p}"),
        (true, None) => format!("[{host}]"),
        (false, Some(p)) => format!("{host}:{p}"),
        (false, None) => host.to_owned(),
    }
}

/// The DNS resolver every connection's HTTP client uses: resolves with the system resolver, then
/// drops the addresses the connection may not reach. Because reqwest connects only to what this
/// returns, a check-then-connect race (DNS rebinding) cannot slip a private address through.
///
/// A resolver sees a name, never the port it is for, so a connection has two: the public one
/// keeps only global addresses, whatever the rules; the private one also keeps non-global
/// addresses of names that some rule allows privately, and is used only for a request whose own
/// rule (exactly that host and port) allows it.
#[derive(Debug, Clone)]
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
    private: bool,
}

impl EgressResolver {
    /// The public resolver for `policy`: global addresses only.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        Self {
            policy,
            private: false,
        }
    }

    /// The resolver for requests whose rule allows private addresses.
    pub fn private(policy: Arc<EgressPolicy>) -> Self {
        Self {
            policy,
            private: true,
        }
    }

    /// Resolves `host` and keeps only the addresses the policy allows.
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<SocketAddr>, EgressDenied> {
        let policy = &self.policy;
        let allow_private =
            policy
                .name_allows_private(host)
                .ok_or_else(|| EgressDenied::HostNotAllowed {
                    host: host.to_owned(),
                    connection: policy.connection.clone(),
                    allowed: policy.allowed_list(),
                })?
                && self.private;
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| EgressDenied::Unresolvable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        let (allowed, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = resolved
            .into_iter()
            .partition(|a| allow_private || is_global(a.ip()));
        if allowed.is_empty() {
            if refused.is_empty() {
                return Err(EgressDenied::Unresolvable {
                    host: host.to_owned(),
                    reason: "no addresses".into(),
                });
            }
            return Err(EgressDenied::NonGlobalAddress {
                host: host.to_owned(),
                addresses: refused
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                connection: policy.connection.clone(),
            });
        }
        if !refused.is_empty() {
            tracing::warn!(
                connection = %policy.connection,
                host,
                dropped = refused.len(),
                "dropped non-global addresses from DNS answer"
            );
        }
        Ok(allowed)
    }
}

impl Resolve for EgressResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = self.clone();
        Box::pin(async move {
            let addrs = this.resolve_allowed(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_rules() {
        let r = HostRule::parse("API.Zendesk.com.").unwrap();
        assert_eq!((r.host(), r.port()), ("api.zendesk.com", None));
        let r = HostRule::parse("127.0.0.1:8080").unwrap();
        assert_eq!((r.host(), r.port()), ("127.0.0.1", Some(8080)));
        let r = HostRule::parse("[::1]:9").unwrap();
        assert_eq!((r.host(), r.port()), ("::1", Some(9)));
        let r = HostRule::parse("::1").unwrap();
        assert_eq!((r.host(), r.port()), ("::1", None));
        let r = HostRule::parse("https://www.zohoapis.jp/crm/v8").unwrap();
        assert_eq!((r.host(), r.port()), ("www.zohoapis.jp", None));
        assert!(!r.allows_http() && !r.allows_private());
        assert!(HostRule::parse("*.zendesk.com").is_err());
        assert!(HostRule::parse("").is_err());
        assert!(HostRule::parse("user:pw@host").is_err());
        assert!(HostRule::parse("host/path").is_err());
    }

    #[test]
    fn reads_host_rules_from_flow_file_values() {
        let rule: HostRule = serde_json::from_value(serde_json::json!({
            "host": "127.0.0.1:9000", "allow_http": true, "allow_private": true
        }))
        .unwrap();
        assert_eq!((rule.host(), rule.port()), ("127.0.0.1", Some(9000)));
        assert!(rule.allows_http() && rule.allows_private());
        let plain: HostRule =
            serde_json::from_value(serde_json::json!({"host": "acme.zendesk.com"})).unwrap();
        assert!(!plain.allows_http() && !plain.allows_private());
        let err = serde_json::from_value::<HostRule>(serde_json::json!({
            "host": "a.example", "allow_privat": true
        }))
        .unwrap_err();
        assert!(err.to_string().contains("allow_privat"), "{err}");
        let err = serde_json::from_value::<HostRule>(serde_json::json!({"host": "*.example"}))
            .unwrap_err();
        assert!(err.to_string().contains("wildcards"), "{err}");
    }

    #[test]
    fn derived_hosts_never_grant_http_or_private() {
        let p = EgressPolicy::new("c", [], ["http://127.0.0.1:1234/"]).unwrap();
        let err = p
            .check_url(&Url::parse("http://127.0.0.1:1234/").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, EgressDenied::SchemeNotAllowed { .. }),
            "{err}"
        );
        let err = p
            .check_url(&Url::parse("https://127.0.0.1:1234/").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, EgressDenied::NonGlobalAddress { .. }),
            "{err}"
        );
    }

    #[test]
    fn port_specific_rules_only_allow_their_port() {
        let p = EgressPolicy::new(
            "c",
            [HostRule::parse("api.example.com:8443").unwrap()],
            [""; 0],
        )
        .unwrap();
        assert!(
            p.check_url(&Url::parse("https://api.example.com:8443/x").unwrap())
                .is_ok()
        );
        let err = p
            .check_url(&Url::parse("https://api.example.com/x").unwrap())
            .unwrap_err();
        assert!(matches!(err, EgressDenied::HostNotAllowed { .. }), "{err}");
    }

    #[test]
    fn refuses_obfuscated_ipv4_literals() {
        let p = EgressPolicy::new(
            "c",
            [HostRule::parse("127.0.0.1").unwrap().allow_http(true)],
            [""; 0],
        )
        .unwrap();
        // The URL parser canonicalizes decimal and hex forms, so they hit the same rule and the
        // same non-global check.
        for url in ["http://2130706433/", "http://0x7f.0.0.1/", "http://127.1/"] {
            let err = p.check_url(&Url::parse(url).unwrap()).unwrap_err();
            assert!(
                matches!(err, EgressDenied::NonGlobalAddress { .. }),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn refuses_non_http_schemes() {
        let p = EgressPolicy::new("c", [], ["example.com"]).unwrap();
        let err = p
            .check_url(&Url::parse("ftp://example.com/").unwrap())
            .unwrap_err();
        assert!(
            matches!(err, EgressDenied::SchemeNotAllowed { .. }),
            "{err}"
        );
    }
}
