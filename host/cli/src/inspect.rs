//! `weft plugin inspect`: what a component is, before anyone runs it.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};
use weft_runtime::bindings::{StreamDescriptor, SyncMode, WriteMode};
use weft_runtime::{
    AuthKind, CacheOutcome, ConnectorInfo, CredentialPlacement, LoadReport, Plugin, TransformInfo,
    auth_kind_name,
};

pub async fn run(data_dir: &Path, file: &Path, as_json: bool) -> anyhow::Result<()> {
    let runtime = crate::runtime(data_dir)?;
    let plugin = runtime
        .load_file(file)
        .await
        .with_context(|| format!("inspecting {}", file.display()))?;
    let text = match (&plugin, as_json) {
        (Plugin::Connector(c), false) => connector_text(c.info(), c.load_report()),
        (Plugin::Transform(t), false) => transform_text(t.info(), t.load_report()),
        (Plugin::Connector(c), true) => {
            serde_json::to_string_pretty(&connector_json(c.info(), c.load_report()))?
        }
        (Plugin::Transform(t), true) => {
            serde_json::to_string_pretty(&transform_json(t.info(), t.load_report()))?
        }
    };
    out!("{text}")?;
    Ok(())
}

fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn sync_name(mode: &SyncMode) -> &'static str {
    match mode {
        SyncMode::Full => "full",
        SyncMode::Incremental => "incremental",
    }
}

fn write_name(mode: &WriteMode) -> &'static str {
    match mode {
        WriteMode::Create => "create",
        WriteMode::Update => "update",
        WriteMode::Upsert => "upsert",
        WriteMode::Delete => "delete",
    }
}

fn placement(p: &CredentialPlacement) -> String {
    match p {
        CredentialPlacement::Header(h) => format!("header `{}: {}`", h.name, h.value),
        CredentialPlacement::Query(q) => format!("query parameter `{q}`"),
        CredentialPlacement::Basic => {
            "header `Authorization: Basic base64(username:password)`".to_owned()
        }
    }
}

fn load_line(load: &LoadReport) -> String {
    let how = match load.outcome {
        CacheOutcome::Compiled => "compiled",
        CacheOutcome::Cached => "loaded from cache",
    };
    format!("{} ({how} in {} ms)", load.file, load.took.as_millis())
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

fn list<T>(items: &[T], name: impl for<'a> Fn(&'a T) -> &'a str) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.iter().map(name).collect::<Vec<_>>().join(", ")
    }
}

fn stream_text(out: &mut String, s: &StreamDescriptor) {
    let _ = writeln!(out, "  {}", s.name);
    if !s.description.is_empty() {
        let _ = writeln!(out, "    {}", s.description);
    }
    let _ = writeln!(
        out,
        "    primary key  {}",
        list(&s.primary_key, |k| k.as_str())
    );
    let _ = writeln!(
        out,
        "    cursor       {}",
        s.cursor_field.as_deref().unwrap_or("-")
    );
    let _ = writeln!(
        out,
        "    sync         {}",
        list(&s.sync_modes, |m| sync_name(m))
    );
    let _ = writeln!(
        out,
        "    write        {}",
        list(&s.write_modes, |m| write_name(m))
    );
    let _ = writeln!(out, "    schema");
    out.push_str(&indent(
        &serde_json::to_string_pretty(&schema(&s.schema)).unwrap_or_default(),
        6,
    ));
}

fn connector_text(info: &ConnectorInfo, load: &LoadReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {} (connector)", info.name, info.version);
    if !info.description.is_empty() {
        let _ = writeln!(out, "{}", info.description);
    }
    let _ = writeln!(out, "\ncontract  weft:plugin@{}", load.contract);
    let _ = writeln!(out, "file      {}", load_line(load));
    if let Some(r) = &info.rate_limit {
        let _ = writeln!(
            out,
            "rate      {} requests per {} ms per credential",
            r.requests, r.per_ms
        );
    }
    let _ = writeln!(
        out,
        "\nhosts (a connection reaches these, and its auth's token_url; each receives the credential)"
    );
    if info.hosts.is_empty() {
        let _ = writeln!(
            out,
            "  - (only what a flow lists in the connection's egress)"
        );
    }
    for template in &info.hosts {
        let _ = writeln!(out, "  {template:<40} {}", host_kind(template));
    }
    let _ = writeln!(out, "\nauth");
    for method in &info.auth {
        let token_url = method
            .token_url
            .as_deref()
            .map(|u| format!(", token endpoint {u}"))
            .unwrap_or_default();
        let applied = match method.kind {
            AuthKind::None => "no credential".to_owned(),
            _ => placement(&method.placement),
        };
        let _ = writeln!(
            out,
            "  {:<26} {applied}{token_url}",
            auth_kind_name(method.kind)
        );
    }
    let _ = writeln!(out, "\nconfig schema");
    out.push_str(&indent(
        &serde_json::to_string_pretty(&schema(&info.config_schema)).unwrap_or_default(),
        2,
    ));
    let _ = writeln!(out, "\nstreams");
    for stream in &info.streams {
        stream_text(&mut out, stream);
    }
    out.trim_end().to_owned()
}

/// How a host template becomes a host of a connection.
fn host_kind(template: &str) -> &'static str {
    if template.contains('{') {
        "from the connection's config"
    } else {
        "fixed: allowed only where a flow lists it in the connection's egress"
    }
}

fn transform_text(info: &TransformInfo, load: &LoadReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} {} (transform)", info.name, info.version);
    if !info.description.is_empty() {
        let _ = writeln!(out, "{}", info.description);
    }
    let _ = writeln!(out, "\ncontract  weft:plugin@{}", load.contract);
    let _ = writeln!(out, "file      {}", load_line(load));
    let _ = writeln!(
        out,
        "lookup    {}",
        if info.takes_lookup {
            "takes a second input as a lookup table"
        } else {
            "no"
        }
    );
    let _ = writeln!(out, "\nconfig schema");
    out.push_str(&indent(
        &serde_json::to_string_pretty(&schema(&info.config_schema)).unwrap_or_default(),
        2,
    ));
    out.trim_end().to_owned()
}

fn connector_json(info: &ConnectorInfo, load: &LoadReport) -> Value {
    json!({
        "kind": "connector",
        "name": info.name,
        "version": info.version,
        "description": info.description,
        "contract": format!("weft:plugin@{}", load.contract),
        "hosts": info.hosts,
        "fixed_hosts": info.hosts.iter().filter(|h| !h.contains('{')).collect::<Vec<_>>(),
        "rate_limit": info.rate_limit.as_ref().map(|r| json!({"requests": r.requests, "per_ms": r.per_ms})),
        "auth": info.auth.iter().map(|m| json!({
            "kind": auth_kind_name(m.kind),
            "placement": placement(&m.placement),
            "token_url": m.token_url,
        })).collect::<Vec<_>>(),
        "config_schema": schema(&info.config_schema),
        "streams": info.streams.iter().map(|s| json!({
            "name": s.name,
            "description": s.description,
            "primary_key": s.primary_key,
            "cursor_field": s.cursor_field,
            "sync_modes": s.sync_modes.iter().map(sync_name).collect::<Vec<_>>(),
            "write_modes": s.write_modes.iter().map(write_name).collect::<Vec<_>>(),
            "schema": schema(&s.schema),
        })).collect::<Vec<_>>(),
    })
}

fn transform_json(info: &TransformInfo, load: &LoadReport) -> Value {
    json!({
        "kind": "transform",
        "name": info.name,
        "version": info.version,
        "description": info.description,
        "contract": format!("weft:plugin@{}", load.contract),
        "takes_lookup": info.takes_lookup,
        "config_schema": schema(&info.config_schema),
    })
}
