//! Deterministic, cross-referenced demo records, computed on demand from `(seed, kind, index)`.
//! Nothing is materialised: a million-record object costs no memory until records are written,
//! and record N is as cheap to produce as record 0.

use crate::config::{DemoData, DemoSize};
use crate::prng::{SplitMix, mix};

/// 2025-01-01T00:00:00Z. Demo records are created over the year that follows, in index order,
/// so creation and modification times grow with the index (emulators rely on that to find
/// "modified since" positions by binary search).
pub(crate) const DEMO_EPOCH_MS: i64 = 1_735_689_600_000;
const DEMO_SPAN_MS: i64 = 365 * 24 * 3_600 * 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Company = 1,
    Contact = 2,
    Deal = 3,
    Lead = 4,
    Ticket = 5,
    Referral = 6,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Demo {
    pub seed: u64,
    pub size: DemoSize,
}

impl From<DemoData> for Demo {
    fn from(d: DemoData) -> Self {
        Self {
            seed: d.seed,
            size: d.size,
        }
    }
}

pub(crate) struct Company {
    pub name: String,
    pub domain: String,
    pub industry: &'static str,
    pub phone: String,
    pub city: &'static str,
    pub state: &'static str,
    pub country: &'static str,
    pub employees: u64,
    pub annual_revenue: u64,
}

pub(crate) struct Person {
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub phone: String,
    pub title: &'static str,
    /// Index of the person's company (contacts), `None` for leads.
    pub company: Option<u64>,
    /// Company name as typed on a lead form.
    pub company_name: String,
}

pub(crate) struct Deal {
    pub name: String,
    pub amount: u64,
    pub stage: usize,
    pub company: u64,
    pub contact: Option<u64>,
    /// Days after the demo epoch.
    pub close_day: i64,
}

pub(crate) struct Ticket {
    pub subject: &'static str,
    pub description: &'static str,
    pub status: &'static str,
    pub priority: &'static str,
    pub kind: &'static str,
    pub requester: u64,
    pub company: Option<u64>,
    pub comments: u64,
    pub tags: Vec<&'static str>,
}

pub(crate) struct Referral {
    pub name: String,
    pub company: u64,
    pub contact: Option<u64>,
    pub deal_value: u64,
    pub currency: &'static str,
    pub status: &'static str,
    pub substatus: &'static str,
    pub direction: &'static str,
    pub kind: &'static str,
    pub qualification: &'static str,
}

/// Stage names in pipeline order; vendors map them to their own picklists.
pub(crate) const DEAL_STAGES: [&str; 6] = [
    "Qualification",
    "Needs Analysis",
    "Proposal",
    "Negotiation",
    "Closed Won",
    "Closed Lost",
];

impl Demo {
    fn rng(&self, kind: Kind, index: u64) -> SplitMix {
        SplitMix::new(self.seed, kind as u64, index)
    }

    /// `(created_ms, modified_ms)` of base record `index` out of `count`, strictly increasing in
    /// `index` for both values.
    pub(crate) fn times(&self, kind: Kind, index: u64, count: u64) -> (i64, i64) {
        let step = (DEMO_SPAN_MS / count.max(1) as i64).max(2);
        let created = DEMO_EPOCH_MS + index as i64 * step;
        let jitter =
            (mix(self.seed ^ ((kind as u64) << 56) ^ index) % (step as u64 / 2).max(1)) as i64;
        (created, created + jitter)
    }

    pub(crate) fn company(&self, i: u64) -> Company {
        let mut r = self.rng(Kind::Company, i);
        let combos = (ADJECTIVES.len() * NOUNS.len() * SUFFIXES.len()) as u64;
        // A bijection of the index over all word combinations keeps names unique and shuffled.
        let slot = (i % combos).wrapping_mul(7_919) % combos;
        let adj = ADJECTIVES[(slot % ADJECTIVES.len() as u64) as usize];
        let noun = NOUNS[((slot / ADJECTIVES.len() as u64) % NOUNS.len() as u64) as usize];
        let suffix = SUFFIXES[(slot / (ADJECTIVES.len() * NOUNS.len()) as u64) as usize];
        let round = i / combos;
        let name = if round == 0 {
            format!("{adj} {noun} {suffix}")
        } else {
            format!("{adj} {noun} {suffix} {}", round + 1)
        };
        let slug = if round == 0 {
            format!("{}-{}", adj.to_lowercase(), noun.to_lowercase())
        } else {
            format!(
                "{}-{}{}",
                adj.to_lowercase(),
                noun.to_lowercase(),
                round + 1
            )
        };
        let suffix_slug = suffix.to_lowercase().replace('.', "");
        let (city, state, country) = r.pick(&CITIES);
        Company {
            domain: format!("{slug}-{suffix_slug}.example"),
            name,
            industry: r.pick(&INDUSTRIES),
            phone: phone(&mut r),
            city,
            state,
            country,
            employees: 5 + r.below(5_000),
            annual_revenue: (1 + r.below(500)) * 100_000,
        }
    }

    /// Contact `j` works at company `j % companies`, so every company has contacts once there
    /// are at least as many contacts as companies, and emails use the company's domain.
    pub(crate) fn contact(&self, j: u64) -> Person {
        let companies = self.size.companies.max(1);
        let company = j % companies;
        let mut r = self.rng(Kind::Contact, j);
        let first = r.pick(&FIRST_NAMES);
        let last = r.pick(&LAST_NAMES);
        let domain = self.company(company).domain;
        let round = j / companies;
        let local = if round == 0 {
            format!("{}.{}", first.to_lowercase(), last.to_lowercase())
        } else {
            format!(
                "{}.{}{}",
                first.to_lowercase(),
                last.to_lowercase(),
                round + 1
            )
        };
        Person {
            email: format!("{local}@{domain}"),
            phone: phone(&mut r),
            title: r.pick(&TITLES),
            first,
            last,
            company: Some(company),
            company_name: self.company(company).name,
        }
    }

    pub(crate) fn lead(&self, l: u64) -> Person {
        let mut r = self.rng(Kind::Lead, l);
        let first = r.pick(&FIRST_NAMES);
        let last = r.pick(&LAST_NAMES);
        let company_name = format!("{} {}", r.pick(&ADJECTIVES), r.pick(&LEAD_NOUNS));
        let domain = format!(
            "{}{}.example",
            company_name.to_lowercase().replace(' ', "-"),
            l + 1
        );
        Person {
            email: format!("{}.{}@{domain}", first.to_lowercase(), last.to_lowercase()),
            phone: phone(&mut r),
            title: r.pick(&TITLES),
            first,
            last,
            company: None,
            company_name,
        }
    }

    pub(crate) fn deal(&self, k: u64) -> Deal {
        let companies = self.size.companies.max(1);
        let company = k % companies;
        let mut r = self.rng(Kind::Deal, k);
        let c = self.company(company);
        let product = r.pick(&PRODUCTS);
        Deal {
            name: format!("{} - {}", c.name, product),
            amount: (1 + r.below(200)) * 500,
            stage: r.below(DEAL_STAGES.len() as u64) as usize,
            contact: (self.size.contacts > company).then_some(company),
            company,
            close_day: 30 + r.below(700) as i64,
        }
    }

    pub(crate) fn ticket(&self, t: u64) -> Ticket {
        let mut r = self.rng(Kind::Ticket, t);
        let requester = t % self.size.contacts.max(1);
        let company = (self.size.contacts > 0).then(|| requester % self.size.companies.max(1));
        let (subject, description) = r.pick(&TICKET_TOPICS);
        let tags = vec![r.pick(&TAGS)];
        Ticket {
            subject,
            description,
            status: r.pick(&["new", "open", "open", "pending", "hold", "solved", "closed"]),
            priority: r.pick(&["low", "normal", "normal", "high", "urgent"]),
            kind: r.pick(&["question", "incident", "problem", "task"]),
            requester,
            company,
            comments: 1 + r.below(3),
            tags,
        }
    }

    pub(crate) fn ticket_comment(&self, t: u64, c: u64) -> &'static str {
        let mut r = SplitMix::new(self.seed, 100 + c, t);
        if c == 0 {
            self.ticket(t).description
        } else {
            r.pick(&COMMENT_BODIES)
        }
    }

    pub(crate) fn referral(&self, i: u64) -> Referral {
        let mut r = self.rng(Kind::Referral, i);
        let company = i % self.size.companies.max(1);
        let c = self.company(company);
        let (status, substatus) = r.pick(&[
            ("New", "Pending"),
            ("New", "Received"),
            ("Active", "Accepted"),
            ("Closed", "Won"),
            ("Closed", "Lost"),
        ]);
        Referral {
            name: format!("{} - {}", c.name, r.pick(&PRODUCTS)),
            company,
            contact: (self.size.contacts > company).then_some(company),
            deal_value: (1 + r.below(400)) * 1_000,
            currency: "USD",
            status,
            substatus,
            direction: r.pick(&["Incoming", "Outgoing"]),
            kind: r.pick(&["Independent", "Shared"]),
            qualification: r.pick(&["SalesQualified", "MarketingQualified", "Direct"]),
        }
    }
}

fn phone(r: &mut SplitMix) -> String {
    format!("+1 555 {:03} {:04}", r.below(1_000), r.below(10_000))
}

const FIRST_NAMES: [&str; 32] = [
    "Ada", "Alan", "Amara", "Ben", "Carla", "Chen", "Dana", "Diego", "Elena", "Farid", "Grace",
    "Hana", "Ivan", "Jade", "Kofi", "Lena", "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa",
    "Sven", "Tara", "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Liam", "Maya",
];
const LAST_NAMES: [&str; 32] = [
    "Abbott", "Banerjee", "Castillo", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Young", "Zimmer", "Novak", "Silva",
    "Murphy", "Khan", "Larsen", "Ortiz",
];
const ADJECTIVES: [&str; 24] = [
    "Northwind",
    "Blue",
    "Silver",
    "Granite",
    "Harbor",
    "Summit",
    "Cedar",
    "Bright",
    "Golden",
    "Pioneer",
    "Evergreen",
    "Crimson",
    "Atlas",
    "Nimbus",
    "Quantum",
    "Riverside",
    "Polar",
    "Solar",
    "Vertex",
    "Coastal",
    "Iron",
    "Maple",
    "Orbit",
    "Prairie",
];
const NOUNS: [&str; 20] = [
    "Analytics",
    "Logistics",
    "Foods",
    "Robotics",
    "Health",
    "Energy",
    "Media",
    "Systems",
    "Works",
    "Labs",
    "Textiles",
    "Motors",
    "Finance",
    "Software",
    "Outfitters",
    "Pharma",
    "Studios",
    "Networks",
    "Farms",
    "Aviation",
];
const SUFFIXES: [&str; 5] = ["Inc", "Ltd", "GmbH", "LLC", "Group"];
const LEAD_NOUNS: [&str; 8] = [
    "Ventures",
    "Partners",
    "Collective",
    "Trading",
    "Supply",
    "Digital",
    "Consulting",
    "Holdings",
];
pub(crate) const INDUSTRIES: [&str; 8] = [
    "Technology",
    "Manufacturing",
    "Retail",
    "Healthcare",
    "Finance",
    "Education",
    "Transportation",
    "Hospitality",
];
const TITLES: [&str; 8] = [
    "CEO",
    "CTO",
    "VP Sales",
    "Head of Support",
    "Operations Manager",
    "Procurement Lead",
    "IT Director",
    "Account Manager",
];
const CITIES: [(&str, &str, &str); 10] = [
    ("Seattle", "WA", "US"),
    ("Austin", "TX", "US"),
    ("Toronto", "ON", "CA"),
    ("London", "", "GB"),
    ("Berlin", "", "DE"),
    ("Paris", "", "FR"),
    ("Madrid", "", "ES"),
    ("Sydney", "NSW", "AU"),
    ("Bengaluru", "KA", "IN"),
    ("Tokyo", "", "JP"),
];
const PRODUCTS: [&str; 8] = [
    "Platform renewal",
    "Analytics add-on",
    "Support upgrade",
    "Cloud migration",
    "Onboarding",
    "Seat expansion",
    "Pilot",
    "Integration",
];
const TAGS: [&str; 6] = [
    "billing",
    "login",
    "integration",
    "bug",
    "feature_request",
    "onboarding",
];
const TICKET_TOPICS: [(&str, &str); 8] = [
    (
        "Cannot log in",
        "Since this morning the login page rejects my password.",
    ),
    (
        "Invoice shows wrong amount",
        "Our last invoice charged for 12 seats; we have 10.",
    ),
    (
        "Sync stopped",
        "The CRM sync has not run since yesterday evening.",
    ),
    (
        "Feature request: export",
        "We would like to export reports as CSV.",
    ),
    (
        "Slow dashboard",
        "The dashboard takes over a minute to load.",
    ),
    (
        "Add a new user",
        "Please add our new colleague to the account.",
    ),
    (
        "Webhook failures",
        "Our endpoint receives webhooks with an invalid signature.",
    ),
    (
        "Cancel subscription",
        "We want to cancel at the end of the term.",
    ),
];
const COMMENT_BODIES: [&str; 6] = [
    "Thanks, we are looking into it.",
    "Could you send a screenshot?",
    "This is fixed in the latest release.",
    "I have escalated this to engineering.",
    "Any update on this?",
    "Confirmed, it works now. Thank you!",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_use_their_company_domain_and_emails_are_unique() {
        let demo = Demo {
            seed: 1,
            size: DemoSize::uniform(50),
        };
        let mut emails = std::collections::HashSet::new();
        for j in 0..200 {
            let p = demo.contact(j);
            let c = demo.company(p.company.unwrap());
            assert!(
                p.email.ends_with(&format!("@{}", c.domain)),
                "{} vs {}",
                p.email,
                c.domain
            );
            assert!(emails.insert(p.email));
        }
    }

    #[test]
    fn company_names_are_unique_past_the_word_combinations() {
        let demo = Demo {
            seed: 1,
            size: DemoSize::uniform(5_000),
        };
        let names: std::collections::HashSet<String> =
            (0..5_000).map(|i| demo.company(i).name).collect();
        assert_eq!(names.len(), 5_000);
    }

    #[test]
    fn times_grow_with_the_index() {
        let demo = Demo {
            seed: 3,
            size: DemoSize::uniform(1_000_000),
        };
        let mut last = (0, 0);
        for i in (0..1_000_000).step_by(997) {
            let t = demo.times(Kind::Contact, i, 1_000_000);
            assert!(t.0 > last.0 && t.1 > last.1 && t.1 >= t.0);
            last = t;
        }
    }
}
