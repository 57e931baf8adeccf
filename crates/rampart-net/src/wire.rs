//! The request rules gateway and node both apply (the node again, as defence in depth), so that
//! what a service receives is exactly what the gateway routed and policy judged.
//!
//! - **Methods** are canonical: upper-case tokens. `delete` is not `DELETE` to policy, but many
//!   frameworks upper-case it before acting, so a non-canonical method is refused outright.
//!   `CONNECT` and `TRACE` are not served at all.
//! - **Paths** are normalised (RFC 3986 §5.2.4 dot-segment removal, with `%2e`/`%2E` counted as
//!   a dot for that purpose) and refused when they would climb above their root, hide a slash or
//!   backslash inside a segment (`%2f`, `%5c`, `\`), carry a control character (a NUL, or a
//!   CR and LF that an app decoding the path could write into a header), or are not valid
//!   percent-encoding. The gateway applies it to the path after the service's segment, so no
//!   path can leave the service it was routed to.

use std::borrow::Cow;

/// Why a request path is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `..` segment would climb above the root (for the gateway: above the service).
    #[error("the path climbs above its service with '..'")]
    Climbs,
    /// A segment holds an encoded slash or backslash, or a raw backslash.
    #[error("the path hides a slash or backslash inside a segment")]
    HiddenSeparator,
    /// A control character (NUL, CR, LF, DEL…), raw or encoded.
    #[error("the path holds a control character")]
    Control,
    /// A `%` not followed by two hexadecimal digits.
    #[error("the path has invalid percent-encoding")]
    BadEncoding,
    /// The path does not start with `/`.
    #[error("the path must start with '/'")]
    NotAbsolute,
}

impl PathError {
    /// A short machine-readable name, for the event's reason (the event is `bad_path`).
    pub fn name(&self) -> &'static str {
        match self {
            PathError::Climbs => "path_climbs",
            PathError::HiddenSeparator => "path_hidden_separator",
            PathError::Control => "path_control",
            PathError::BadEncoding => "path_bad_encoding",
            PathError::NotAbsolute => "path_not_absolute",
        }
    }
}

/// What a segment is once checked: a dot segment, or a name to keep as it was sent.
enum Segment {
    Dot,
    DotDot,
    Name,
}

fn segment(raw: &str) -> Result<Segment, PathError> {
    let bytes = raw.as_bytes();
    let mut dots = 0usize;
    let mut chars = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let decoded = if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEncoding)?;
            let (Some(hi), Some(lo)) = (hex_value(hex[0]), hex_value(hex[1])) else {
                return Err(PathError::BadEncoding);
            };
            i += 3;
            hi << 4 | lo
        } else {
            i += 1;
            b
        };
        match decoded {
            0..0x20 | 0x7f => return Err(PathError::Control),
            b'/' if b == b'%' => return Err(PathError::HiddenSeparator),
            b'\\' => return Err(PathError::HiddenSeparator),
            b'.' => dots += 1,
            _ => {}
        }
        chars += 1;
    }
    Ok(match (chars, dots) {
        (1, 1) => Segment::Dot,
        (2, 2) => Segment::DotDot,
        _ => Segment::Name,
    })
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// The path with its dot segments removed, or why it is refused. Segments other than dot
/// segments are kept exactly as sent (their escapes included); a path without dot segments is
/// returned borrowed.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut changed = false;
    let mut trailing_slash = false;
    for raw in rest.split('/') {
        trailing_slash = false;
        match segment(raw)? {
            Segment::Name => kept.push(raw),
            Segment::Dot => {
                changed = true;
                trailing_slash = true;
            }
            Segment::DotDot => {
                kept.pop().ok_or(PathError::Climbs)?;
                changed = true;
                trailing_slash = true;
            }
        }
    }
    if !changed {
        return Ok(Cow::Borrowed(path));
    }
    let mut out = String::with_capacity(path.len());
    for s in &kept {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// Why a method is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MethodError {
    /// Lower-case letters in the method: `delete` is not `DELETE`.
    #[error("methods are upper-case (send {0}, not its lower- or mixed-case spelling)")]
    NotCanonical(&'static str),
    /// Lower-case letters in a method rampart does not know.
    #[error("methods are upper-case tokens")]
    NotUpperCase,
    /// `CONNECT` (a tunnel: rampart is no forward proxy) or `TRACE` (an echo of the request,
    /// which cross-site tracing turns against the caller's own headers).
    #[error("{0} is not served here")]
    NotServed(&'static str),
}

/// Refuses a method that is not written in upper case (the only spelling policy matches), and
/// the methods not served (`CONNECT`, `TRACE`).
pub fn check_method(method: &http::Method) -> Result<(), MethodError> {
    if method == http::Method::CONNECT {
        return Err(MethodError::NotServed("CONNECT"));
    }
    if method == http::Method::TRACE {
        return Err(MethodError::NotServed("TRACE"));
    }
    let m = method.as_str();
    if !m.bytes().any(|b| b.is_ascii_lowercase()) {
        return Ok(());
    }
    const KNOWN: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    match KNOWN.iter().find(|k| k.eq_ignore_ascii_case(m)) {
        Some(k) => Err(MethodError::NotCanonical(k)),
        None => Err(MethodError::NotUpperCase),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(normalize_path("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(normalize_path("/a/./b").unwrap(), "/a/b");
        assert_eq!(normalize_path("/a/%2e/b/%2E%2e/c").unwrap(), "/a/c");
        assert_eq!(normalize_path("/a/..").unwrap(), "/");
        assert_eq!(normalize_path("/a/b/.").unwrap(), "/a/b/");
        assert_eq!(normalize_path("/.").unwrap(), "/");
        assert_eq!(normalize_path("/").unwrap(), "/");
        assert!(matches!(normalize_path("/a/b%20c//d").unwrap(), Cow::Borrowed("/a/b%20c//d")));
        assert_eq!(normalize_path("/a.b/...").unwrap(), "/a.b/...");
        assert_eq!(normalize_path("/a/%2e%2e%2e").unwrap(), "/a/%2e%2e%2e");
    }

    #[test]
    fn climbing_and_hidden_separators_are_refused() {
        assert_eq!(normalize_path("/.."), Err(PathError::Climbs));
        assert_eq!(normalize_path("/a/../.."), Err(PathError::Climbs));
        assert_eq!(normalize_path("/%2e%2e/%2E%2E/etc/passwd"), Err(PathError::Climbs));
        assert_eq!(normalize_path("/..%2f..%2fetc%2fpasswd"), Err(PathError::HiddenSeparator));
        assert_eq!(normalize_path("/a%2Fb"), Err(PathError::HiddenSeparator));
        assert_eq!(normalize_path("/a%5cb"), Err(PathError::HiddenSeparator));
        assert_eq!(normalize_path("/a\\b"), Err(PathError::HiddenSeparator));
        assert_eq!(normalize_path("/a%00"), Err(PathError::Control));
        assert_eq!(normalize_path("/a%0d%0aSet-Cookie:%20x"), Err(PathError::Control));
        assert_eq!(normalize_path("/a%7F"), Err(PathError::Control));
        assert_eq!(normalize_path("/a%20b%C3%A9").unwrap(), "/a%20b%C3%A9");
        assert_eq!(normalize_path("/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("/a%2"), Err(PathError::BadEncoding));
        assert_eq!(normalize_path("a"), Err(PathError::NotAbsolute));
    }

    /// Random paths from a hostile alphabet: never a panic, and whatever is accepted has no
    /// dot segment left, no hidden separator, and stays absolute.
    #[test]
    fn random_paths_are_normalised_or_refused() {
        const ALPHABET: [&str; 14] =
            ["/", ".", "..", "%2e", "%2E", "%2f", "%5C", "%00", "%", "%z", "a", "b", "\\", "%41"];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut path = String::from("/");
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..(x % 12) {
                path.push_str(ALPHABET[((x >> (i * 4)) % ALPHABET.len() as u64) as usize]);
            }
            if let Ok(out) = normalize_path(&path) {
                assert!(out.starts_with('/'), "{path} -> {out}");
                for seg in out.split('/') {
                    let dots = seg.replace("%2e", ".").replace("%2E", ".");
                    assert!(dots != "." && dots != "..", "{path} -> {out}");
                    assert!(!seg.contains("%2f") && !seg.contains('\\'), "{path} -> {out}");
                }
            }
        }
    }

    #[test]
    fn methods_must_be_upper_case() {
        let m = |s: &str| http::Method::from_bytes(s.as_bytes()).unwrap();
        assert!(check_method(&m("DELETE")).is_ok());
        assert!(check_method(&m("PROPFIND")).is_ok());
        assert_eq!(check_method(&m("delete")), Err(MethodError::NotCanonical("DELETE")));
        assert_eq!(check_method(&m("Delete")), Err(MethodError::NotCanonical("DELETE")));
        assert_eq!(check_method(&m("propfind")), Err(MethodError::NotUpperCase));
        assert_eq!(check_method(&m("CONNECT")), Err(MethodError::NotServed("CONNECT")));
        assert_eq!(check_method(&m("TRACE")), Err(MethodError::NotServed("TRACE")));
    }
}
