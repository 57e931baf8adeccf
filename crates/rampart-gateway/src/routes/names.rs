//! The server names (SNI) of passthrough routes: DNS names, checked when the routes are read,
//! since a name that no client can send would leave its route unreachable without a word.

use std::collections::HashMap;

use super::RouteError;

/// The longest DNS name (RFC 1035), without the final dot.
const MAX_NAME: usize = 253;
/// The longest label.
const MAX_LABEL: usize = 63;

/// `names` of `route`, lower case, each a DNS name that no route of `taken` has.
pub(super) fn checked(
    route: &str,
    names: &[String],
    taken: &HashMap<String, String>,
) -> Result<Vec<String>, RouteError> {
    if names.is_empty() {
        return Err(RouteError::NoNames(route.to_owned()));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let bad = |why| RouteError::BadServerName { route: route.to_owned(), name: name.clone(), why };
        let lower = name.to_ascii_lowercase();
        dns_name(&lower).map_err(bad)?;
        if let Some(other) = taken.get(&lower) {
            return Err(RouteError::NameTaken {
                route: route.to_owned(),
                name: name.clone(),
                other: other.clone(),
            });
        }
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    Ok(out)
}

/// Whether `name` (lower case) is a DNS name a client may send as SNI, or why not.
fn dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err("is not a DNS name (1 to 253 characters)");
    }
    if name.starts_with("*.") {
        return Err("is a wildcard: a passthrough route names each host it answers for");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an address: clients send no server name for an address, only for a DNS name");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if !name.split('.').all(label_ok) {
        return Err("is not a DNS name (labels of letters, digits and '-', separated by dots)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_dns_names_of_one_route_each() {
        let none = HashMap::new();
        let ok =
            checked("hello", &["Hello.Example.TEST".into(), "hello.example.test".into()], &none).unwrap();
        assert_eq!(ok, ["hello.example.test"]);
        for bad in ["", "*.example.test", "127.0.0.1", "a..b", "-a.b", "a_b.test", "a b", &"a".repeat(64)] {
            let e = checked("hello", &[bad.to_owned()], &none).unwrap_err();
            assert!(matches!(e, RouteError::BadServerName { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("[routes.hello]"), "{e}");
        }
        assert_eq!(checked("hello", &[], &none).unwrap_err(), RouteError::NoNames("hello".into()));
        let taken = HashMap::from([("hello.example.test".to_owned(), "echo".to_owned())]);
        let e = checked("hello", &["HELLO.example.test".into()], &taken).unwrap_err();
        assert!(matches!(e, RouteError::NameTaken { ref other, .. } if other == "echo"), "{e}");
    }
}
