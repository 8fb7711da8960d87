use std::fmt;

/// The services the sandbox emulates, in the order of their well-known ports (4101..4107).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    Zoho,
    Zendesk,
    Salesforce,
    HubSpot,
    Dataverse,
    Monday,
    PartnerCenter,
}

impl Vendor {
    pub const ALL: [Vendor; 7] = [
        Vendor::Zoho,
        Vendor::Zendesk,
        Vendor::Salesforce,
        Vendor::HubSpot,
        Vendor::Dataverse,
        Vendor::Monday,
        Vendor::PartnerCenter,
    ];

    /// Short lowercase name used in admin API paths (`/admin/vendors/zoho/...`).
    pub fn slug(self) -> &'static str {
        match self {
            Vendor::Zoho => "zoho",
            Vendor::Zendesk => "zendesk",
            Vendor::Salesforce => "salesforce",
            Vendor::HubSpot => "hubspot",
            Vendor::Dataverse => "dataverse",
            Vendor::Monday => "monday",
            Vendor::PartnerCenter => "partner-center",
        }
    }

    pub fn display_name(self) -> &'static str {
        match self {
            Vendor::Zoho => "Zoho CRM",
            Vendor::Zendesk => "Zendesk Support",
            Vendor::Salesforce => "Salesforce",
            Vendor::HubSpot => "HubSpot CRM",
            Vendor::Dataverse => "Dynamics 365 (Dataverse)",
            Vendor::Monday => "monday.com",
            Vendor::PartnerCenter => "Partner Center referrals",
        }
    }

    pub fn from_slug(s: &str) -> Option<Vendor> {
        Vendor::ALL.into_iter().find(|v| v.slug() == s)
    }

    pub(crate) fn port_offset(self) -> u16 {
        Vendor::ALL.iter().position(|v| *v == self).expect("in ALL") as u16
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.slug())
    }
}
