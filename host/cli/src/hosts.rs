//! The hosts a connection may reach, as `weft validate` and `weft connections` show them: the
//! final allowlist with where each host came from and whether it receives the credential, and
//! the hosts its plugin declared that the flow does not allow.

use std::fmt::Write as _;

use weft_capabilities::ConnectionSpec;

/// The lines describing `spec`'s hosts, indented for a connection's block.
pub fn describe(spec: &ConnectionSpec) -> String {
    let mut out = String::new();
    let policy = spec.policy();
    match &policy {
        Ok(policy) => {
            for entry in policy.entries() {
                let rule = &entry.rule;
                let scheme = if rule.allows_http() {
                    "http(s)"
                } else {
                    "https"
                };
                let host = rule.address();
                let mut flags = vec![scheme.to_owned()];
                if rule.allows_private() {
                    flags.push("private addresses".into());
                }
                flags.push(if rule.receives_credential() {
                    "credential".into()
                } else {
                    "no credential".into()
                });
                let _ = writeln!(
                    out,
                    "    {host:<40} {:<40} from {}",
                    flags.join(", "),
                    entry.sources.join("; ")
                );
            }
            if policy.entries().next().is_none() {
                let _ = writeln!(out, "    (no host: every request is denied)");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "    {e}");
        }
    }
    for host in &spec.declined_hosts {
        if policy.as_ref().is_ok_and(|p| p.lists(host)) {
            continue;
        }
        let _ = writeln!(
            out,
            "    {host:<40} not allowed: declared by the plugin, not implied by the flow; list it in the connection's egress to allow it"
        );
    }
    out
}
