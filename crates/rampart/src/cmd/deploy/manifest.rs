//! Kubernetes objects written as YAML by hand: the shapes are fixed and small (a Secret, a
//! ConfigMap), every name is checked before it is written, values go in base64 or as quoted
//! strings, so a YAML library would add a dependency and nothing we need.

use std::fmt::Write as _;

use anyhow::{Result, bail};
use base64::Engine as _;

/// One object's metadata.
pub struct Meta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// What the object holds (`app.kubernetes.io/component`).
    pub component: &'a str,
    /// `rampart/<key>` annotations.
    pub annotations: Vec<(&'a str, String)>,
}

/// A Secret of `kind` (`kubernetes.io/tls`, `Opaque`) holding `data` byte for byte.
pub fn secret(meta: &Meta<'_>, kind: &str, data: &[(&str, &[u8])]) -> String {
    let mut out = header("Secret", meta);
    let _ = writeln!(out, "type: {kind}\ndata:");
    for (key, value) in data {
        let _ = writeln!(out, "  {key}: {}", base64::engine::general_purpose::STANDARD.encode(value));
    }
    out
}

/// A ConfigMap of text files.
pub fn config_map(meta: &Meta<'_>, data: &[(&str, &str)]) -> String {
    let mut out = header("ConfigMap", meta);
    out.push_str("data:\n");
    for (key, value) in data {
        let _ = writeln!(out, "  {key}: {}", text(value, "    "));
    }
    out
}

fn header(kind: &str, meta: &Meta<'_>) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: {kind}\nmetadata:\n  name: {}\n  namespace: {}\n  labels:\n    \
         app.kubernetes.io/part-of: rampart\n    app.kubernetes.io/component: {}\n",
        meta.name, meta.namespace, meta.component
    );
    if !meta.annotations.is_empty() {
        out.push_str("  annotations:\n");
        for (key, value) in &meta.annotations {
            let _ = writeln!(out, "    rampart/{key}: {}", quoted(value));
        }
    }
    out
}

/// A text value: a literal block when it is plain lines ending in one newline (readable, and
/// kept exactly), else a double-quoted string with escapes.
fn text(value: &str, indent: &str) -> String {
    let plain = value.ends_with('\n')
        && !value.ends_with("\n\n")
        && !value.starts_with([' ', '\n'])
        && value.chars().all(|c| c == '\n' || (!c.is_control() && c != '\u{feff}'))
        && !value.lines().any(|l| l.ends_with(' '));
    if !plain {
        return quoted(value);
    }
    let mut out = String::from("|");
    for line in value.lines() {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(indent);
            out.push_str(line);
        }
    }
    out
}

/// A double-quoted scalar: JSON's string syntax is YAML's.
fn quoted(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// A name for an object: lower case, `_` as `-`, checked against Kubernetes' rule for names
/// (RFC 1123 subdomain: letters, digits, '-' and '.', starting and ending alphanumeric).
pub fn object_name(raw: &str) -> Result<String> {
    let name: String = raw.to_ascii_lowercase().replace('_', "-");
    let ok_edges = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 253
        || !ok_edges(name.chars().next())
        || !ok_edges(name.chars().last())
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        bail!(
            "{raw:?} cannot be a Kubernetes object name (letters, digits, '-' and '.'; alphanumeric at both ends)"
        );
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_are_blocks_when_plain_and_quoted_otherwise() {
        assert_eq!(text("a = 1\n\nb = 2\n", "    "), "|\n    a = 1\n\n    b = 2");
        assert_eq!(text("no newline", "    "), "\"no newline\"");
        assert_eq!(text(" leading\n", "    "), "\" leading\\n\"");
        assert_eq!(text("two\n\n", "    "), "\"two\\n\\n\"");
        assert_eq!(text("tab\there\n", "    "), "\"tab\\there\\n\"");
    }

    #[test]
    fn object_names_follow_kubernetes_rules() {
        assert_eq!(object_name("rampart-cert-Node_1").unwrap(), "rampart-cert-node-1");
        assert!(object_name("rampart-cert-n1-").is_err());
        assert!(object_name("rampart-cert-n1.").is_err());
        assert!(object_name(&"a".repeat(254)).is_err());
    }
}
