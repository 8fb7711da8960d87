//! An HTTPS proxy in front of the emulators, for clients that hard-code the vendors' hosts
//! (most Airbyte sources and Singer taps do). A client needs only `HTTPS_PROXY` and the
//! sandbox's CA certificate: the proxy accepts `CONNECT` for the vendors' API and login hosts,
//! terminates TLS with a certificate for that host signed by the sandbox's CA (`ProxyCa`), and
//! hands each request to the emulator that plays the host. It refuses every other host, so a
//! misconfigured client fails instead of reaching a real vendor.
//!
//! Requests through the proxy go through the same request log and fault injection as direct
//! ones. Absolute URLs in answers (next-page links, Salesforce's `instance_url`) still name the
//! emulators' loopback addresses; the proxy accepts `CONNECT` to those addresses too, so a
//! client that follows them over https stays on the sandbox.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, GeneralSubtree,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::error::SandboxError;
use crate::server::{self, Emulator, Hub};
use crate::vendor::Vendor;
use crate::vendors::partner_center;

/// Zoho's data centres: API domains (`www.`, `sandbox.`, `developer.`) and accounts domains.
const ZOHO_API_SUFFIXES: [&str; 10] = [
    "com", "eu", "in", "com.au", "jp", "ca", "com.cn", "sa", "ae", "uk",
];
const ZOHO_ACCOUNTS: [&str; 10] = [
    "accounts.zoho.com",
    "accounts.zoho.eu",
    "accounts.zoho.in",
    "accounts.zoho.com.au",
    "accounts.zoho.jp",
    "accounts.zohocloud.ca",
    "accounts.zoho.com.cn",
    "accounts.zoho.sa",
    "accounts.zoho.ae",
    "accounts.zoho.uk",
];

/// The hosts the proxy answers for, as people would read them in an error message.
pub const ROUTED_HOSTS: &str = "*.zendesk.com, api.hubapi.com, api.hubspot.com, login.salesforce.com, test.salesforce.com, *.my.salesforce.com, \
www.zohoapis.* (and sandbox./developer.), accounts.zoho.*, accounts.zohocloud.ca, *.crm*.dynamics.com, login.microsoftonline.com, \
api.monday.com, api.partner.microsoft.com, and the emulators' own loopback addresses";

/// Which emulator plays `host` (a name the vendor serves its API or logins from), or `None`
/// for any other host. `login.microsoftonline.com` is shared by Dataverse and Partner Center;
/// the tenant in the request path decides (`route_path`).
pub fn route_host(host: &str) -> Option<HostRoute> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let vendor = match host.as_str() {
        h if h.ends_with(".zendesk.com") && h.len() > ".zendesk.com".len() => Vendor::Zendesk,
        "api.hubapi.com" | "api.hubspot.com" => Vendor::HubSpot,
        "login.salesforce.com" | "test.salesforce.com" => Vendor::Salesforce,
        h if h.ends_with(".my.salesforce.com") => Vendor::Salesforce,
        h if ZOHO_ACCOUNTS.contains(&h) => Vendor::Zoho,
        h if ["www.", "sandbox.", "developer."].iter().any(|p| {
            ZOHO_API_SUFFIXES
                .iter()
                .any(|s| h == format!("{p}zohoapis.{s}"))
        }) =>
        {
            Vendor::Zoho
        }
        h if dynamics_org(h) => Vendor::Dataverse,
        "login.microsoftonline.com" => return Some(HostRoute::MicrosoftLogin),
        "api.monday.com" => Vendor::Monday,
        "api.partner.microsoft.com" => Vendor::PartnerCenter,
        _ => return None,
    };
    Some(HostRoute::Vendor(vendor))
}

/// `{org}.crm.dynamics.com` or a regional `{org}.crm4.dynamics.com`.
fn dynamics_org(h: &str) -> bool {
    let Some(rest) = h.strip_suffix(".dynamics.com") else {
        return false;
    };
    let Some((org, region)) = rest.rsplit_once('.') else {
        return false;
    };
    !org.is_empty()
        && region
            .strip_prefix("crm")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// How a routed host maps onto emulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRoute {
    Vendor(Vendor),
    /// Microsoft Entra's token endpoints, for Dataverse and Partner Center.
    MicrosoftLogin,
}

impl HostRoute {
    /// The emulator for a request path on this host.
    pub fn route_path(self, path: &str) -> Vendor {
        match self {
            HostRoute::Vendor(v) => v,
            HostRoute::MicrosoftLogin => {
                let tenant = path.trim_start_matches('/').split('/').next().unwrap_or("");
                if tenant == partner_center::TENANT {
                    Vendor::PartnerCenter
                } else {
                    Vendor::Dataverse
                }
            }
        }
    }
}

/// The proxy's certificate authority: a key and its self-signed CA certificate. Keep one in a
/// directory (`load_or_create`) and clients trust it once; `generate` makes a fresh one.
pub struct ProxyCa {
    key: KeyPair,
    cert_pem: String,
}

/// File names in a CA directory: the key and certificate together, and the certificate alone
/// (what clients are told to trust).
const CA_KEY_AND_CERT: &str = "sandbox-ca-key.pem";
const CA_CERT: &str = "sandbox-ca.pem";

impl ProxyCa {
    /// A new CA, valid until 2036.
    pub fn generate() -> Result<ProxyCa, SandboxError> {
        let key = KeyPair::generate().map_err(ca_error)?;
        let cert_pem = ca_params().self_signed(&key).map_err(ca_error)?.pem();
        Ok(ProxyCa { key, cert_pem })
    }

    /// The CA kept in `dir`, made there on first use. Concurrent callers (parallel tests, two
    /// `weft sandbox` processes) end up with the same CA: the first to create it wins.
    pub fn load_or_create(dir: &Path) -> Result<ProxyCa, SandboxError> {
        let io = |what: &str, e: std::io::Error| {
            SandboxError::Config(format!("{what} the sandbox CA in {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory for", e))?;
        let path = dir.join(CA_KEY_AND_CERT);
        if !path.exists() {
            let ca = ProxyCa::generate()?;
            let tmp = dir.join(format!("{CA_KEY_AND_CERT}.{}.tmp", std::process::id()));
            std::fs::write(&tmp, format!("{}{}", ca.key.serialize_pem(), ca.cert_pem))
                .map_err(|e| io("writing", e))?;
            // A hard link fails if the file exists: the first writer's CA is the one kept.
            let _ = std::fs::hard_link(&tmp, &path);
            let _ = std::fs::remove_file(&tmp);
        }
        let both = std::fs::read_to_string(&path).map_err(|e| io("reading", e))?;
        let cert_at = both.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| {
            SandboxError::Config(format!(
                "{} holds no CA certificate; delete it to make a new CA",
                path.display()
            ))
        })?;
        let key = KeyPair::from_pem(&both[..cert_at]).map_err(ca_error)?;
        let ca = ProxyCa {
            key,
            cert_pem: both[cert_at..].to_string(),
        };
        let cert_path = dir.join(CA_CERT);
        if std::fs::read_to_string(&cert_path).ok().as_deref() != Some(ca.cert_pem.as_str()) {
            std::fs::write(&cert_path, &ca.cert_pem).map_err(|e| io("writing", e))?;
        }
        Ok(ca)
    }

    /// Where `load_or_create(dir)` keeps the certificate clients should trust.
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join(CA_CERT)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

fn ca_error(e: rcgen::Error) -> SandboxError {
    SandboxError::Config(format!(
        "could not make or read the sandbox proxy's CA: {e}"
    ))
}

/// The CA certificate's fields. They are the same every time, so a CA read back from its key
/// issues leaf certificates whose issuer matches the certificate clients trust. Name
/// constraints limit what the CA can vouch for to the routed vendor domains and loopback: a
/// copy of its key (it sits in the data directory) cannot mint certificates for other sites.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut domains: Vec<String> = [
        "zendesk.com",
        "hubapi.com",
        "hubspot.com",
        "salesforce.com",
        "zohocloud.ca",
        "dynamics.com",
        "login.microsoftonline.com",
        "monday.com",
        "partner.microsoft.com",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    domains.extend(ZOHO_API_SUFFIXES.iter().map(|s| format!("zohoapis.{s}")));
    domains.extend(
        ZOHO_ACCOUNTS
            .iter()
            .filter_map(|a| a.strip_prefix("accounts."))
            .map(str::to_string),
    );
    domains.sort();
    domains.dedup();
    let mut permitted: Vec<GeneralSubtree> =
        domains.into_iter().map(GeneralSubtree::DnsName).collect();
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V4(
        [127, 0, 0, 0],
        [255, 0, 0, 0],
    )));
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::V6(
        std::net::Ipv6Addr::LOCALHOST.octets(),
        [0xff; 16],
    )));
    params.name_constraints = Some(NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    });
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "weft sandbox CA");
    params.distinguished_name.push(
        DnType::OrganizationName,
        "weft sandbox (local emulators only)",
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params
}

/// Issues a leaf certificate per host, on first use.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    configs: Mutex<HashMap<String, Arc<rustls::ServerConfig>>>,
}

impl Authority {
    fn new(ca: ProxyCa) -> Authority {
        Authority {
            pem: ca.cert_pem,
            issuer: Issuer::new(ca_params(), ca.key),
            configs: Mutex::new(HashMap::new()),
        }
    }

    /// The TLS server configuration presenting a certificate for `host`.
    fn config_for(&self, host: &str) -> Result<Arc<rustls::ServerConfig>, String> {
        if let Some(c) = self.configs.lock().expect("proxy certificates").get(host) {
            return Ok(Arc::clone(c));
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params =
            CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        // The name is in the subject alternative name only: a common name would be checked
        // against the CA's DNS constraints by OpenSSL even for an IP address.
        params.distinguished_name = DistinguishedName::new();
        params.use_authority_key_identifier_extension = true;
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2035, 12, 31);
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| e.to_string())?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        self.configs
            .lock()
            .expect("proxy certificates")
            .insert(host.to_string(), Arc::clone(&config));
        Ok(config)
    }
}

/// What every proxied connection needs.
struct Routes {
    hub: Arc<Hub>,
    emulators: HashMap<Vendor, (Arc<dyn Emulator>, Router)>,
    /// Emulators by their own loopback `host:port`.
    loopback: HashMap<String, Vendor>,
    authority: Authority,
}

impl Routes {
    /// The route for a `CONNECT host:port` target.
    fn target(&self, host: &str, port: u16) -> Option<HostRoute> {
        if let Some(v) = self.loopback.get(&format!("{host}:{port}")) {
            return Some(HostRoute::Vendor(*v));
        }
        if port != 443 {
            return None;
        }
        route_host(host)
    }
}

/// A running proxy; `weft sandbox --proxy` prints its URL and CA.
pub struct Proxy {
    addr: SocketAddr,
    ca_pem: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(
        addr: SocketAddr,
        ca: ProxyCa,
        hub: Arc<Hub>,
        emulators: &[Arc<dyn Emulator>],
    ) -> Result<Proxy, SandboxError> {
        let authority = Authority::new(ca);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SandboxError::Bind {
                vendor: "HTTPS proxy",
                addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            vendor: "HTTPS proxy",
            addr,
            source,
        })?;
        let loopback = emulators
            .iter()
            .filter_map(|e| {
                e.base_url()
                    .get()
                    .and_then(|u| u.strip_prefix("http://"))
                    .map(|hp| (hp.to_string(), e.vendor()))
            })
            .collect();
        let routes = Arc::new(Routes {
            hub,
            emulators: emulators
                .iter()
                .map(|e| (e.vendor(), (Arc::clone(e), Arc::clone(e).router())))
                .collect(),
            loopback,
            authority,
        });
        let ca_pem = routes.authority.pem.clone();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, routes, stop_rx));
        tracing::info!(proxy = %addr, "sandbox HTTPS proxy started");
        Ok(Proxy {
            addr,
            ca_pem,
            stop,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`: the value for `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The CA certificate (PEM) clients must trust for the proxied hosts.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Stops accepting and closes open tunnels.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, routes: Arc<Routes>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                conns.spawn(tunnel(stream, Arc::clone(&routes), stop.clone()));
                while conns.try_join_next().is_some() {}
            }
        }
    }
    conns.abort_all();
}

/// Largest `CONNECT` request head the proxy reads.
const MAX_HEAD: usize = 16 * 1024;

/// One client connection: a `CONNECT` to a routed host becomes a TLS session served by the
/// emulators; anything else is refused with a message that says why.
async fn tunnel(mut stream: TcpStream, routes: Arc<Routes>, mut stop: watch::Receiver<bool>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_HEAD {
            return refuse(
                &mut stream,
                "431 Request Header Fields Too Large",
                "the CONNECT request head is too large",
            )
            .await;
        }
    }
    let line = String::from_utf8_lossy(&head[..head.iter().position(|b| *b == b'\r').unwrap_or(0)])
        .into_owned();
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "CONNECT" {
        let why = format!(
            "the weft sandbox proxy only tunnels https (CONNECT host:443); got {method} {target}. The vendors' APIs are https-only"
        );
        return refuse(&mut stream, "405 Method Not Allowed", &why).await;
    }
    let (host, port) = match target
        .rsplit_once(':')
        .map(|(h, p)| (h.trim_matches(['[', ']']), p.parse::<u16>()))
    {
        Some((h, Ok(p))) if !h.is_empty() => (h.to_string(), p),
        _ => {
            return refuse(
                &mut stream,
                "400 Bad Request",
                &format!("CONNECT needs host:port, got {target:?}"),
            )
            .await;
        }
    };
    let Some(route) = routes.target(&host, port) else {
        let why = format!(
            "{host}:{port} is not an emulator; the weft sandbox proxy routes only {ROUTED_HOSTS}"
        );
        return refuse(&mut stream, "403 Forbidden", &why).await;
    };
    if stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let config = match routes.authority.config_for(&host) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(host = %host, error = %e, "proxy could not make a certificate");
            return;
        }
    };
    let Ok(tls) = TlsAcceptor::from(config).accept(stream).await else {
        return;
    };
    let kill = Arc::new(Notify::new());
    let kill_in = Arc::clone(&kill);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let routes = Arc::clone(&routes);
        let kill = Arc::clone(&kill_in);
        async move {
            let vendor = route.route_path(req.uri().path());
            let resp = match routes.emulators.get(&vendor) {
                Some((emu, router)) => {
                    server::handle(
                        req,
                        router.clone(),
                        Arc::clone(emu),
                        Arc::clone(&routes.hub),
                        kill,
                    )
                    .await
                }
                None => (
                    StatusCode::BAD_GATEWAY,
                    format!("the {} emulator is not running", vendor.display_name()),
                )
                    .into_response(),
            };
            Ok::<Response, Infallible>(resp)
        }
    });
    let conn = server::http1().serve_connection(TokioIo::new(tls), svc);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = stop.changed() => {}
    }
}

async fn refuse(stream: &mut TcpStream, status: &str, why: &str) {
    let body = format!("{why}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vendors::dataverse;

    #[test]
    fn vendor_hosts_route_to_their_emulators_and_others_do_not() {
        let v = |h: &str| route_host(h).map(|r| r.route_path("/"));
        assert_eq!(v("acme.zendesk.com"), Some(Vendor::Zendesk));
        assert_eq!(v("zendesk.com"), None);
        assert_eq!(v("api.hubapi.com"), Some(Vendor::HubSpot));
        assert_eq!(v("login.salesforce.com"), Some(Vendor::Salesforce));
        assert_eq!(v("acme.my.salesforce.com"), Some(Vendor::Salesforce));
        assert_eq!(v("www.zohoapis.eu"), Some(Vendor::Zoho));
        assert_eq!(v("accounts.zoho.com.au"), Some(Vendor::Zoho));
        assert_eq!(v("accounts.zohocloud.ca"), Some(Vendor::Zoho));
        assert_eq!(v("acme.crm.dynamics.com"), Some(Vendor::Dataverse));
        assert_eq!(v("acme.crm4.dynamics.com"), Some(Vendor::Dataverse));
        assert_eq!(v("api.monday.com"), Some(Vendor::Monday));
        assert_eq!(v("api.partner.microsoft.com"), Some(Vendor::PartnerCenter));
        for other in [
            "example.com",
            "zendesk.com.evil.example",
            "api.hubapi.com.evil.example",
            "crm.dynamics.com",
            "www.zohoapis.net",
            "169.254.169.254",
        ] {
            assert_eq!(v(other), None, "{other}");
        }
    }

    #[test]
    fn a_kept_ca_is_read_back_the_same_and_issues_for_its_certificate() {
        let dir = std::env::temp_dir().join(format!("weft-sandbox-ca-test-{}", std::process::id()));
        let first = ProxyCa::load_or_create(&dir).unwrap();
        let again = ProxyCa::load_or_create(&dir).unwrap();
        assert_eq!(first.cert_pem(), again.cert_pem());
        assert_eq!(
            std::fs::read_to_string(ProxyCa::cert_path(&dir)).unwrap(),
            first.cert_pem()
        );
        // A leaf issued by the reloaded key chains to the stored certificate.
        let authority = Authority::new(again);
        authority.config_for("api.hubapi.com").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn microsoft_login_goes_to_the_emulator_of_the_tenant() {
        let r = route_host("login.microsoftonline.com").unwrap();
        assert_eq!(
            r.route_path(&format!("/{}/oauth2/token", partner_center::TENANT)),
            Vendor::PartnerCenter
        );
        assert_eq!(
            r.route_path(&format!("/{}/oauth2/v2.0/token", dataverse::TENANT)),
            Vendor::Dataverse
        );
    }
}
