//! Reads: list pages written as text, search pages keyset by modification time, association
//! streams, the daily limits.

use super::*;

/// A HubSpot object as batch writes and association reads answer it (reads of records go
/// through [`RawObject`]).
#[derive(Deserialize)]
pub(super) struct ApiObject {
    pub(super) id: String,
    #[serde(default)]
    pub(super) properties: BTreeMap<String, Value>,
    #[serde(default)]
    associations: BTreeMap<String, AssociationList>,
    #[serde(default, rename = "new")]
    pub(super) is_new: Option<bool>,
}

#[derive(Deserialize, Default)]
struct AssociationList {
    #[serde(default)]
    results: Vec<AssociatedId>,
}

#[derive(Deserialize)]
struct AssociatedId {
    id: Value,
}

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(default)]
    next: Option<NextPage>,
}

#[derive(Deserialize)]
struct NextPage {
    after: Value,
}

impl Paging {
    fn after(&self) -> Option<String> {
        self.next.as_ref().map(|n| match &n.after {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    results: Vec<ApiObject>,
    #[serde(default)]
    paging: Paging,
}

/// Where a read resumes.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Resume {
    /// The list endpoint's opaque cursor (full reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) after: Option<String>,
    /// The lower bound (epoch ms, inclusive) of the current search query (incremental reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) since: Option<i64>,
    /// The offset within the current search query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<u64>,
    /// Records already delivered whose modification time is exactly `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    skip: Vec<String>,
}

/// A HubSpot object of a list page, its values left as the JSON text HubSpot sent.
#[derive(Deserialize)]
struct RawObject<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(default, borrow, deserialize_with = "raw_members")]
    properties: Vec<(Cow<'a, str>, &'a RawValue)>,
    #[serde(default, borrow, rename = "createdAt")]
    created_at: Option<&'a RawValue>,
    #[serde(default, borrow, rename = "updatedAt")]
    updated_at: Option<&'a RawValue>,
    #[serde(default, borrow)]
    archived: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RawListAnswer<'a> {
    #[serde(default, borrow)]
    results: Vec<RawObject<'a>>,
    #[serde(default)]
    paging: Paging,
    /// Search answers say how many match.
    #[serde(default)]
    total: Option<u64>,
}

impl RawObject<'_> {
    /// The object's id, when it is a string (as HubSpot sends it).
    fn id_text(&self) -> Option<String> {
        serde_json::from_str(self.id.get()).ok()
    }

    /// When the object was last modified: its modification property (the last given, as its
    /// record keeps), else `updatedAt`.
    fn modified_ms(&self, t: &ObjectType) -> Option<i64> {
        let property = self
            .properties
            .iter()
            .rev()
            .find(|(name, _)| name == t.modified)
            .map(|(_, value)| *value);
        let text: String = serde_json::from_str(property.or(self.updated_at)?.get()).ok()?;
        weft_sdk::time::parse_rfc3339_ms(&text)
    }
}

/// Appends `o` as a weft record, flattened: its properties beside `id`, `createdAt`,
/// `updatedAt` and `archived`, in name order, the values' text as received (no [`Record`] is
/// built: list and search pages are the bulk of a read).
fn push_flattened(records: &mut RecordsJson, o: &RawObject<'_>) {
    let mut members: Vec<(&str, &str)> = Vec::with_capacity(o.properties.len() + 4);
    members.push(("id", o.id.get()));
    members.extend(
        o.properties
            .iter()
            .map(|(name, value)| (name.as_ref(), value.get())),
    );
    // Absent is null, and archived false.
    members.push(("createdAt", o.created_at.map_or("null", |v| v.get())));
    members.push(("updatedAt", o.updated_at.map_or("null", |v| v.get())));
    members.push(("archived", o.archived.map_or("false", |v| v.get())));
    // In name order, and of a name given twice the later (a property named `id` replaces the
    // object's id; the envelope's own members replace properties of their names), as inserting
    // into a map in that order would. The sort is stable, so equal names keep the order given.
    members.sort_by(|a, b| a.0.cmp(b.0));
    let mut kept: Vec<(&str, &str)> = Vec::with_capacity(members.len());
    for member in members {
        match kept.last_mut() {
            Some(last) if last.0 == member.0 => *last = member,
            _ => kept.push(member),
        }
    }
    records.push(kept);
}

/// A JSON object's members in the order sent, names borrowed from the text where they hold no
/// escapes (serde makes an owned `Cow` of a map key otherwise), values as their text.
fn raw_members<'de, D>(
    deserializer: D,
) -> std::result::Result<Vec<(Cow<'de, str>, &'de RawValue)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Name<'a>(Cow<'a, str>);
    impl<'de> Deserialize<'de> for Name<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Name<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a property name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Name<'de>, E> {
                    Ok(Name(Cow::Owned(v.to_owned())))
                }
            }
            d.deserialize_str(Visit)
        }
    }
    struct Members;
    impl<'de> serde::de::Visitor<'de> for Members {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of properties")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
            while let Some((Name(name), value)) = map.next_entry::<Name<'de>, &'de RawValue>()? {
                members.push((name, value));
            }
            Ok(members)
        }
    }
    deserializer.deserialize_map(Members)
}

pub(super) fn read_list(
    conn: &Connection,
    t: &ObjectType,
    req: &ReadRequest,
    resume: Resume,
) -> Result<Page> {
    let limit = req.page_size.unwrap_or(LIST_LIMIT).clamp(1, LIST_LIMIT);
    let response = checked(
        conn.get(&format!("{}/crm/v3/objects/{}", base_url(conn)?, t.stream))
            .query("limit", limit)
            .query("properties", t.all_properties().join(","))
            .query_opt("after", resume.after.as_deref())
            .send()?,
    )?;
    let answer: RawListAnswer<'_> = response.json()?;
    let next = answer.paging.after();
    let mut records = RecordsJson::new();
    for object in &answer.results {
        push_flattened(&mut records, object);
    }
    Ok(match next {
        Some(after) => Page::more_json(
            records,
            &Resume {
                after: Some(after),
                ..Resume::default()
            },
        ),
        None => Page::last_json::<Resume>(records, None),
    })
}

pub(super) fn read_search(
    conn: &Connection,
    t: &ObjectType,
    req: &ReadRequest,
    resume: Resume,
) -> Result<Page> {
    let limit = req.page_size.unwrap_or(SEARCH_LIMIT).clamp(1, SEARCH_LIMIT);
    let since = resume.since.unwrap_or(0);
    let offset = resume.offset.unwrap_or(0);
    let body = json!({
        "filterGroups": [{"filters": [{"propertyName": t.modified, "operator": "GTE", "value": since.to_string()}]}],
        "sorts": [{"propertyName": t.modified, "direction": "ASCENDING"}],
        "properties": t.all_properties(),
        "limit": limit,
        "after": offset.to_string(),
    });
    let response = checked(
        conn.post(&format!(
            "{}/crm/v3/objects/{}/search",
            base_url(conn)?,
            t.stream
        ))
        .json(&body)?
        .send()?,
    )?;
    let answer: RawListAnswer<'_> = response.json()?;
    let next_offset = answer
        .paging
        .after()
        .map(|a| a.parse::<u64>())
        .transpose()
        .map_err(|_| Error::upstream(200, b"search paging.next.after is not a number"))?;
    let total = answer.total;
    let skip: BTreeSet<&str> = resume.skip.iter().map(String::as_str).collect();
    let mut records = RecordsJson::new();
    // The newest modification time delivered so far and the records delivered at exactly it.
    let (mut newest, mut at_newest) = (since, resume.skip.clone());
    for object in &answer.results {
        let (modified, id) = (object.modified_ms(t), object.id_text());
        if modified == Some(since) && id.as_deref().is_some_and(|id| skip.contains(id)) {
            continue;
        }
        push_flattened(&mut records, object);
        let (Some(ms), Some(id)) = (modified, id) else {
            continue;
        };
        if ms > newest {
            newest = ms;
            at_newest.clear();
        }
        if ms == newest && !at_newest.contains(&id) {
            at_newest.push(id);
        }
    }
    let page = match next_offset {
        // By keyset: a new query from the newest time delivered, skipping what was delivered at
        // it. A record edited meanwhile moves past the bound and is read there; paging by
        // offset instead would skip one record for each that moved out of the pages before.
        Some(_) if newest > since => Page::more_json(
            records,
            &Resume {
                since: Some(newest),
                offset: None,
                skip: at_newest,
                after: None,
            },
        ),
        // More records than a page share one modification time: page through them by offset.
        Some(next) if next + u64::from(limit) <= SEARCH_WINDOW => Page::more_json(
            records,
            &Resume {
                since: Some(since),
                offset: Some(next),
                skip: at_newest,
                after: None,
            },
        ),
        Some(_) => {
            return Err(Error::internal(format!(
                "more than {SEARCH_WINDOW} {} share the modification time {since}; search cannot page past them",
                t.stream
            )));
        }
        None => {
            // Kept for the next run: never past what search may not have indexed yet.
            let horizon = weft_sdk::time::now_ms() - INDEX_LAG_MS;
            let state = if newest > horizon && horizon >= since {
                Resume {
                    since: Some(horizon),
                    ..Resume::default()
                }
            } else {
                Resume {
                    since: Some(newest),
                    skip: at_newest,
                    ..Resume::default()
                }
            };
            Page::last_json(records, Some(&state))
        }
    };
    Ok(match total {
        Some(n) => page.with_total(n),
        None => page,
    })
}

pub(super) fn read_associations(
    conn: &Connection,
    a: &Association,
    req: &ReadRequest,
    resume: Resume,
) -> Result<Page> {
    let limit = req.page_size.unwrap_or(LIST_LIMIT).clamp(1, LIST_LIMIT);
    let answer: ListAnswer = checked(
        conn.get(&format!("{}/crm/v3/objects/{}", base_url(conn)?, a.from))
            .query("limit", limit)
            .query("properties", "hs_object_id")
            .query("associations", a.to)
            .query_opt("after", resume.after.as_deref())
            .send()?,
    )?
    .json()?;
    let next = answer.paging.after();
    let mut records = Vec::new();
    for object in answer.results {
        let targets = object
            .associations
            .get(a.to)
            .map(|x| x.results.as_slice())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        for target in targets {
            let id = match &target.id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if seen.insert(id.clone()) {
                let mut r = Record::new();
                r.insert(a.from_field.into(), json!(object.id));
                r.insert(a.to_field.into(), json!(id));
                records.push(r);
            }
        }
    }
    Ok(match next {
        Some(after) => Page::more(
            records,
            &Resume {
                after: Some(after),
                ..Resume::default()
            },
        ),
        None => Page::last::<Resume>(records, None),
    })
}

pub(super) fn read_limits(conn: &Connection) -> Result<Page> {
    let resp = checked(
        conn.get(&format!("{}/account-info/v3/details", base_url(conn)?))
            .send()?,
    )?;
    let number = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let mut daily = Record::new();
    daily.insert("name".into(), json!("daily"));
    daily.insert("max".into(), json!(number("x-hubspot-ratelimit-daily")));
    daily.insert(
        "remaining".into(),
        json!(number("x-hubspot-ratelimit-daily-remaining")),
    );
    daily.insert("interval_ms".into(), json!(86_400_000u64));
    let mut burst = Record::new();
    burst.insert("name".into(), json!("interval"));
    burst.insert("max".into(), json!(number("x-hubspot-ratelimit-max")));
    burst.insert(
        "remaining".into(),
        json!(number("x-hubspot-ratelimit-remaining")),
    );
    burst.insert(
        "interval_ms".into(),
        json!(number("x-hubspot-ratelimit-interval-milliseconds")),
    );
    Ok(Page::last::<()>(vec![daily, burst], None))
}
