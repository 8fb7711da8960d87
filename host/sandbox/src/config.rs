//! Everything a sandbox run can be tuned with. Every numeric vendor limit lives here rather
//! than in the emulators, because the vendors change them often and tests need small values.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the sandbox is started; `SandboxConfig::default()` suits tests (ephemeral ports, small
/// data, no faults), `SandboxConfig::well_known_ports()` suits the `weft sandbox` command.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address every emulator listens on. Loopback by default: the sandbox has no auth of its own.
    pub host: IpAddr,
    pub ports: PortPlan,
    pub data: DemoData,
    pub faults: FaultConfig,
    pub tokens: TokenLifetimes,
    pub webhooks: WebhookConfig,
    pub zoho: ZohoLimits,
    pub zendesk: ZendeskLimits,
    pub salesforce: SalesforceLimits,
    pub hubspot: HubSpotLimits,
    pub dataverse: DataverseLimits,
    pub monday: MondayLimits,
    pub partner_center: PartnerCenterLimits,
    /// PEM (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`) that Salesforce JWT assertions must be
    /// signed for. `None` uses the sandbox's published demo key pair (see `credentials`).
    pub salesforce_jwt_public_key_pem: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: PortPlan::Ephemeral,
            data: DemoData::default(),
            faults: FaultConfig::default(),
            tokens: TokenLifetimes::default(),
            webhooks: WebhookConfig::default(),
            zoho: ZohoLimits::default(),
            zendesk: ZendeskLimits::default(),
            salesforce: SalesforceLimits::default(),
            hubspot: HubSpotLimits::default(),
            dataverse: DataverseLimits::default(),
            monday: MondayLimits::default(),
            partner_center: PartnerCenterLimits::default(),
            salesforce_jwt_public_key_pem: None,
        }
    }
}

/// What a request-count limit becomes in an [`SandboxConfig::unthrottled`] sandbox: out of reach
/// for any benchmark, small enough that nothing summing it overflows.
const UNTHROTTLED: u32 = 1_000_000_000;

impl SandboxConfig {
    /// This configuration with every limit on the pace of requests (per second, minute, window
    /// or day, concurrency, token refreshes) out of reach, so that a benchmark measures the
    /// client rather than the vendor's throttling. Page sizes, paging windows and batch sizes,
    /// which shape the API rather than pace it, stay as they are.
    pub fn unthrottled(mut self) -> Self {
        let n = UNTHROTTLED;
        self.zoho.daily_credits = u64::from(n);
        self.zoho.concurrency = n;
        self.zoho.tokens_per_window = n;
        self.zendesk.requests_per_minute = n;
        self.zendesk.incremental_per_minute = n;
        self.salesforce.daily_api_requests = u64::from(n);
        self.hubspot.burst = n;
        self.hubspot.daily = u64::from(n);
        self.hubspot.search_per_second = n;
        self.dataverse.requests_per_window = n;
        self.dataverse.execution_time_per_window = Duration::from_secs(u64::from(n));
        self.dataverse.concurrent_requests = n;
        self.monday.complexity_per_minute = u64::from(n);
        self.monday.daily_calls = u64::from(n);
        self.monday.requests_per_minute = n;
        self.monday.concurrent_requests = n;
        self.partner_center.validation_events_per_minute = n;
        self
    }

    /// The fixed ports `weft sandbox` documents: admin API on 4100, vendors on 4101..4107.
    pub fn well_known_ports() -> Self {
        Self {
            ports: PortPlan::Fixed {
                admin: 4100,
                first_vendor: 4101,
            },
            ..Self::default()
        }
    }
}

/// Where the emulators listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortPlan {
    /// The OS picks free ports; read them back from `Sandbox::vendor(..).base_url()`.
    Ephemeral,
    /// Admin API on `admin`, vendor N (in `Vendor::ALL` order) on `first_vendor + N`.
    Fixed { admin: u16, first_vendor: u16 },
}

/// Seed and size of the generated demo records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemoData {
    pub seed: u64,
    pub size: DemoSize,
}

impl Default for DemoData {
    fn default() -> Self {
        Self {
            seed: 42,
            size: DemoSize::default(),
        }
    }
}

/// Records per object kind. Companies are accounts/organisations, people are contacts/users;
/// contacts, deals and tickets refer to companies by index so the data is cross-referenced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoSize {
    pub companies: u64,
    pub contacts: u64,
    pub deals: u64,
    pub leads: u64,
    pub tickets: u64,
    pub referrals: u64,
}

impl Default for DemoSize {
    fn default() -> Self {
        Self {
            companies: 20,
            contacts: 50,
            deals: 30,
            leads: 20,
            tickets: 40,
            referrals: 10,
        }
    }
}

impl DemoSize {
    /// The same number of records for every object.
    pub fn uniform(n: u64) -> Self {
        Self {
            companies: n,
            contacts: n,
            deals: n,
            leads: n,
            tickets: n,
            referrals: n,
        }
    }
}

/// Fractions (0.0..=1.0) of vendor requests that fail on purpose, decided per request by a
/// seeded PRNG so a failing test run can be replayed. Admin and token endpoints are included:
/// real token endpoints fail too.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Answered with the vendor's own throttling response (status, body and headers).
    pub rate_limited: f64,
    /// Answered with the vendor's 500/503 shape.
    pub server_error: f64,
    /// The TCP connection is closed without any response.
    pub dropped: f64,
    /// Handled normally after `slow_delay_ms`.
    pub slow: f64,
    pub slow_delay_ms: u64,
    /// The access token presented is treated as expired (the vendor's 401 shape).
    pub token_expired: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            rate_limited: 0.0,
            server_error: 0.0,
            dropped: 0.0,
            slow: 0.0,
            slow_delay_ms: 2_000,
            token_expired: 0.0,
        }
    }
}

/// Access-token and authorization-code lifetimes, per vendor where vendors differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub authorization_code: Duration,
    /// Zoho: 1 hour.
    pub zoho_access: Duration,
    /// Zendesk: not documented, so configurable; clients may also pass `expires_in`.
    pub zendesk_access: Duration,
    pub zendesk_refresh: Duration,
    /// Salesforce sessions follow the org's session timeout (2 hours by default).
    pub salesforce_session: Duration,
    /// HubSpot OAuth access tokens: 30 minutes.
    pub hubspot_access: Duration,
    /// Microsoft Entra ID access tokens (Dataverse, Partner Center): about an hour.
    pub entra_access: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            authorization_code: Duration::from_secs(600),
            zoho_access: Duration::from_secs(3_600),
            zendesk_access: Duration::from_secs(7_200),
            zendesk_refresh: Duration::from_secs(30 * 24 * 3_600),
            salesforce_session: Duration::from_secs(7_200),
            hubspot_access: Duration::from_secs(1_800),
            entra_access: Duration::from_secs(3_599),
        }
    }
}

/// How webhooks leave the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Receiver for vendors whose subscriptions are configured outside the API (HubSpot app
    /// settings); vendors with subscription endpoints deliver where the subscription says.
    pub target: Option<String>,
    /// Delay before the first retry; later retries double it. Vendors wait minutes; tests don't.
    pub retry_base_delay: Duration,
    /// Overrides every vendor's own attempt count when set.
    pub max_attempts: Option<u32>,
    pub timeout: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            target: None,
            retry_base_delay: Duration::from_secs(5),
            max_attempts: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Zoho CRM limits (crm-apis.md §1.5, §1.8, §1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZohoLimits {
    pub max_per_page: u64,
    /// Records reachable with `page`/`per_page` before `DISCRETE_PAGINATION_LIMIT_EXCEEDED`.
    pub discrete_page_records: u64,
    /// Records reachable with `page_token` before `PAGINATION_LIMIT_EXCEEDED`.
    pub page_token_records: u64,
    pub page_token_lifetime: Duration,
    pub max_fields: usize,
    pub max_records_per_write: usize,
    pub daily_credits: u64,
    pub concurrency: u32,
    /// Access tokens one refresh token may mint per `token_window`.
    pub tokens_per_window: u32,
    pub token_window: Duration,
    pub channel_default_expiry: Duration,
    pub channel_max_expiry: Duration,
    pub notification_attempts: u32,
}

impl Default for ZohoLimits {
    fn default() -> Self {
        Self {
            max_per_page: 200,
            discrete_page_records: 2_000,
            page_token_records: 100_000,
            page_token_lifetime: Duration::from_secs(24 * 3_600),
            max_fields: 50,
            max_records_per_write: 100,
            daily_credits: 100_000,
            concurrency: 20,
            tokens_per_window: 10,
            token_window: Duration::from_secs(600),
            channel_default_expiry: Duration::from_secs(3_600),
            channel_max_expiry: Duration::from_secs(7 * 24 * 3_600),
            notification_attempts: 3,
        }
    }
}

/// Zendesk Support limits (crm-apis.md §2.4–2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZendeskLimits {
    pub requests_per_minute: u32,
    pub max_page_size: u64,
    /// Records reachable with offset pagination before 400.
    pub offset_records: u64,
    pub incremental_per_minute: u32,
    /// Changes newer than this are left out of incremental exports.
    pub incremental_lag: Duration,
    pub incremental_page_size: u64,
    pub max_bulk: usize,
    pub max_comments_per_ticket: u64,
    pub jobs_kept: usize,
    pub webhook_attempts: u32,
}

impl Default for ZendeskLimits {
    fn default() -> Self {
        Self {
            requests_per_minute: 700,
            max_page_size: 100,
            offset_records: 10_000,
            incremental_per_minute: 10,
            incremental_lag: Duration::from_secs(60),
            incremental_page_size: 1_000,
            max_bulk: 100,
            max_comments_per_ticket: 5_000,
            jobs_kept: 100,
            webhook_attempts: 3,
        }
    }
}

/// Salesforce limits (crm-apis.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesforceLimits {
    pub daily_api_requests: u64,
    pub query_batch_size: u64,
    pub collection_max_records: usize,
    pub collection_max_chunks: usize,
    /// How far in the future a JWT assertion's `exp` may lie.
    pub jwt_max_lifetime: Duration,
    pub get_updated_window_days: i64,
    pub get_deleted_window_days: i64,
    pub get_updated_max_ids: usize,
}

impl Default for SalesforceLimits {
    fn default() -> Self {
        Self {
            daily_api_requests: 100_000,
            query_batch_size: 2_000,
            collection_max_records: 200,
            collection_max_chunks: 10,
            jwt_max_lifetime: Duration::from_secs(300),
            get_updated_window_days: 30,
            get_deleted_window_days: 15,
            get_updated_max_ids: 600_000,
        }
    }
}

/// HubSpot CRM limits (crm-apis.md §4). The documented numbers disagree between doc versions,
/// which is one more reason each is configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSpotLimits {
    /// Requests per rolling `interval` (the `TEN_SECONDLY_ROLLING` policy).
    pub burst: u32,
    pub interval: Duration,
    pub daily: u64,
    /// Search requests per second (the "secondly" limit).
    pub search_per_second: u32,
    pub max_list_limit: u64,
    pub max_search_limit: u64,
    /// Results reachable through search paging.
    pub search_window: u64,
    pub max_filter_groups: usize,
    pub max_filters_per_group: usize,
    pub max_filters_total: usize,
    pub max_batch_inputs: usize,
    /// Newly created objects become searchable after this delay.
    pub search_index_lag: Duration,
    pub webhook_attempts: u32,
}

impl Default for HubSpotLimits {
    fn default() -> Self {
        Self {
            burst: 100,
            interval: Duration::from_secs(10),
            daily: 250_000,
            search_per_second: 5,
            max_list_limit: 100,
            max_search_limit: 200,
            search_window: 10_000,
            max_filter_groups: 5,
            max_filters_per_group: 6,
            max_filters_total: 18,
            max_batch_inputs: 100,
            search_index_lag: Duration::from_secs(2),
            webhook_attempts: 10,
        }
    }
}

/// Dataverse service protection and paging limits (crm-apis.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataverseLimits {
    /// The sliding window the three service protection limits are measured over.
    pub window: Duration,
    pub requests_per_window: u32,
    /// Combined handling time allowed per window.
    pub execution_time_per_window: Duration,
    pub concurrent_requests: u32,
    pub max_page_size: u64,
    /// Delta tokens older than this answer with an expired-token error (a full resync).
    pub delta_token_max_age: Duration,
    pub max_bulk_targets: usize,
    pub webhook_attempts: u32,
}

impl Default for DataverseLimits {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(300),
            requests_per_window: 6_000,
            execution_time_per_window: Duration::from_secs(1_200),
            concurrent_requests: 52,
            max_page_size: 5_000,
            delta_token_max_age: Duration::from_secs(90 * 24 * 3_600),
            max_bulk_targets: 1_000,
            webhook_attempts: 5,
        }
    }
}

/// monday.com limits (crm-apis.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MondayLimits {
    pub max_complexity_per_query: u64,
    /// Complexity points per token per minute (personal tokens on paid plans: 10M).
    pub complexity_per_minute: u64,
    /// Calls per day, reset at 00:00 UTC (`DAILY_LIMIT_EXCEEDED`).
    pub daily_calls: u64,
    pub requests_per_minute: u32,
    /// Requests one token may have in flight at once.
    pub concurrent_requests: u32,
    pub max_items_per_page: u64,
    pub cursor_lifetime: Duration,
    /// Points charged for one item-creating or item-changing mutation.
    pub mutation_cost: u64,
    pub webhook_attempts: u32,
}

impl Default for MondayLimits {
    fn default() -> Self {
        Self {
            max_complexity_per_query: 5_000_000,
            complexity_per_minute: 10_000_000,
            daily_calls: 25_000,
            requests_per_minute: 5_000,
            concurrent_requests: 100,
            max_items_per_page: 500,
            cursor_lifetime: Duration::from_secs(3_600),
            mutation_cost: 10_000,
            webhook_attempts: 3,
        }
    }
}

/// Partner Center referrals limits (crm-apis.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartnerCenterLimits {
    /// Unanswered incoming referrals are archived as Closed/Expired after this.
    pub referral_response_window: Duration,
    pub max_page_size: u64,
    /// Validation events allowed per minute.
    pub validation_events_per_minute: u32,
    pub webhook_attempts: u32,
}

impl Default for PartnerCenterLimits {
    fn default() -> Self {
        Self {
            referral_response_window: Duration::from_secs(14 * 24 * 3_600),
            max_page_size: 100,
            validation_events_per_minute: 2,
            webhook_attempts: 10,
        }
    }
}
