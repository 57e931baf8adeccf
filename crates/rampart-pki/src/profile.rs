//! What goes into each kind of certificate. rcgen signs whatever it is given, so everything
//! its defaults leave open is set here explicitly: validity (rcgen defaults to 1975–4096),
//! random serials, key identifiers, basic constraints, key usages and EKUs by role.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::error::{PkiError, Result};
use crate::identity::{Role, SpiffeId, TrustDomain};
use crate::lifetime::Lifetime;

/// Certificates start a few minutes in the past so that a peer whose clock is slightly behind
/// does not reject a certificate issued a moment ago.
pub const BACKDATE: Duration = Duration::minutes(5);

/// The longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// Parameters of a trust domain's root CA: CA:TRUE with path length 0 (it signs only leaves),
/// keyCertSign + cRLSign, explicit validity, a random serial; rcgen adds the SKI.
pub fn ca_params(domain: &TrustDomain, days: u32, now: OffsetDateTime) -> Result<CertificateParams> {
    ca_params_named(domain, &format!("rampart {domain} CA"), days, now)
}

/// [`ca_params`] under another common name: a CA replacing another of the same domain must not
/// share its name, since verifiers pick a CRL by its issuer's name.
pub fn ca_params_named(
    domain: &TrustDomain,
    common_name: &str,
    days: u32,
    now: OffsetDateTime,
) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(common_name, domain);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut p, days, now)?;
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

/// What a leaf certificate is for.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    /// The identity it carries.
    pub id: SpiffeId,
    /// DNS names (server roles only).
    pub dns: Vec<String>,
    /// IP addresses (server roles only).
    pub ips: Vec<IpAddr>,
    /// Validity, from the moment of issue.
    pub lifetime: Lifetime,
}

/// Parameters of a leaf: exactly one URI SAN with the identity, CA:FALSE, digitalSignature,
/// EKUs by role (serverAuth + clientAuth for gateway/node/peer, clientAuth for user/admin),
/// DNS/IP SANs for server roles, AKI + SKI, a random serial, explicit validity.
pub fn leaf_params(spec: &LeafSpec, now: OffsetDateTime) -> Result<CertificateParams> {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(spec.id.name.as_str(), &spec.id.domain);
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = match spec.id.role {
        Role::Gateway | Role::Node | Role::Peer => {
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth]
        }
        Role::User | Role::Admin => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    let uri = spec.id.to_string();
    let uri = uri.try_into().map_err(|e: rcgen::Error| PkiError::InvalidSan {
        value: spec.id.to_string(),
        reason: e.to_string(),
    })?;
    p.subject_alt_names.push(SanType::URI(uri));
    if spec.id.role.serves_tls() {
        for name in &spec.dns {
            check_dns(name)?;
            let ia5 = name.as_str().try_into().map_err(|e: rcgen::Error| PkiError::InvalidSan {
                value: name.clone(),
                reason: e.to_string(),
            })?;
            p.subject_alt_names.push(SanType::DnsName(ia5));
        }
        p.subject_alt_names.extend(spec.ips.iter().copied().map(SanType::IpAddress));
    }
    p.use_authority_key_identifier_extension = true;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    p.not_before = now - BACKDATE;
    p.not_after = now + spec.lifetime.duration();
    p.serial_number = Some(random_serial()?);
    Ok(p)
}

/// The DNS names and addresses a server certificate gets when none are asked for.
pub fn default_server_sans() -> (Vec<String>, Vec<IpAddr>) {
    (
        vec!["localhost".to_owned()],
        vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)],
    )
}

fn dn(common_name: &str, domain: &TrustDomain) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "rampart");
    dn.push(DnType::OrganizationalUnitName, domain.as_str());
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(p: &mut CertificateParams, days: u32, now: OffsetDateTime) -> Result<()> {
    if days == 0 || days > MAX_DAYS {
        return Err(PkiError::InvalidDays(days));
    }
    // Whole seconds: X.509 times carry no fractions, and the index should match the certificate.
    let now = now.replace_nanosecond(0).unwrap_or(now);
    p.not_before = now - BACKDATE;
    p.not_after = now + Duration::days(i64::from(days));
    Ok(())
}

/// 128 random bits, positive and never zero (RFC 5280 asks for at most 20 octets, positive).
fn random_serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| PkiError::KeyGeneration { key_type: "serial", reason: e.to_string() })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A hostname or a `*.` wildcard of one: labels of letters, digits and `-`, at most 253 bytes.
fn check_dns(name: &str) -> Result<()> {
    let bad = |reason: &str| Err(PkiError::InvalidSan { value: name.to_owned(), reason: reason.to_owned() });
    let host = name.strip_prefix("*.").unwrap_or(name);
    if host.is_empty() || name.len() > 253 {
        return bad("DNS names must be 1 to 253 characters");
    }
    for label in host.split('.') {
        let ok_chars = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if label.is_empty() || label.len() > 63 || !ok_chars || label.starts_with('-') || label.ends_with('-')
        {
            return bad("not a valid DNS name (labels of letters, digits and '-')");
        }
    }
    if host.parse::<IpAddr>().is_ok() {
        return bad("this is an IP address: pass it with --ip");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_checked() {
        for good in ["localhost", "api.example.com", "*.svc.local", "a-1"] {
            assert!(check_dns(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a..b", "a b", "x/y", "*.", "a.*.b", "ex_ample.com"] {
            assert!(check_dns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validity_is_bounded() {
        let mut p = CertificateParams::default();
        assert!(set_validity(&mut p, 0, OffsetDateTime::now_utc()).is_err());
        assert!(set_validity(&mut p, MAX_DAYS + 1, OffsetDateTime::now_utc()).is_err());
        set_validity(&mut p, 10, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(p.not_after - p.not_before, Duration::days(10) + BACKDATE);
    }

    #[test]
    fn serials_are_positive_and_distinct() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a[0] & 0x80, 0);
        assert_ne!(a[0], 0);
    }
}
