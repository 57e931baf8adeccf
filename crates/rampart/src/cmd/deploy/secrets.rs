//! `rampart deploy k8s-secrets`: the home as Kubernetes objects, printed on stdout. Each file
//! goes in byte for byte; private material (keys, the keyring, the admin token) only ever in a
//! Secret, the rest (the pods' `rampart.toml`, the CRL) in the ConfigMap.

use std::io::IsTerminal as _;

use anyhow::{Context, Result, bail};
use rampart_pki::{Status, TrustDomain};
use time::OffsetDateTime;

use super::manifest::{self, Meta};
use super::{ADMIN_TOKEN_SECRET, CA_KEY_SECRET, CONFIG_MAP, ETCD_FILES, KEYRING_SECRET};
use crate::cli::K8sSecretsArgs;
use crate::home::{Config, Home, StoreConfig};

pub fn run(home: &Home, args: K8sSecretsArgs) -> Result<()> {
    let config = home.config()?;
    check_namespace(&args.namespace)?;
    let pki = home.pki();
    let ns = args.namespace.as_str();
    let etcd_cert = pki.domain_dir(&args.etcd_domain).join("issued").join(format!("{}.pem", args.etcd_user));
    if args.etcd_domain == config.domain {
        bail!(
            "--etcd-domain must be a trust domain of its own, not the network's {:?}",
            config.domain.as_str()
        );
    }
    if !etcd_cert.is_file() {
        bail!(
            "no etcd client certificate {} in this home: the pods keep the registry in etcd, reached with a \
             certificate of its own trust domain. Make them with\n  rampart pki init --domain {etcd}\n  \
             rampart pki issue --domain {etcd} --role user --name {user}\n(docs/deploy.md has the whole \
             walk-through, with the members' certificate)",
            etcd_cert.display(),
            etcd = args.etcd_domain.as_str(),
            user = args.etcd_user,
        );
    }

    let mut out = format!(
        "# Kubernetes objects of the rampart network {:?}, made by `rampart deploy k8s-secrets`.\n\
         # They hold private keys: apply them (kubectl apply -f FILE) and keep them out of version control.\n",
        config.domain.as_str()
    );
    let mut names: Vec<String> = Vec::new();
    let dir = pki.domain_dir(&config.domain);
    let crl = std::fs::read_to_string(dir.join("crl.pem")).context("reading the CRL")?;
    let pods_toml = pods_config(&config, &args)?;
    out += &manifest::config_map(
        &Meta { name: CONFIG_MAP, namespace: ns, component: "config", annotations: vec![] },
        &[("rampart.toml", &pods_toml), ("crl.pem", &crl), ("domain", config.domain.as_str())],
    );

    for (name, secret) in certificate_secrets(home, &config.domain, ns)? {
        out += &secret;
        names.push(name);
    }
    let mut opaque = |name: &str, component: &str, key: &str, path: &std::path::Path| -> Result<()> {
        let meta = Meta { name, namespace: ns, component, annotations: vec![] };
        out += &secret(&meta, "Opaque", &[(key, files_read(path)?)]);
        names.push(name.to_owned());
        Ok(())
    };
    if home.keyring_path().is_file() {
        opaque(KEYRING_SECRET, "keyring", "payload.keys", &home.keyring_path())?;
    }
    if home.admin_token_path().is_file() {
        opaque(ADMIN_TOKEN_SECRET, "admin-token", "admin.token", &home.admin_token_path())?;
    }
    if args.include_ca_key {
        opaque(CA_KEY_SECRET, "ca-key", "ca.key", &dir.join("ca.key"))?;
    }

    outln!("{}", out.trim_end());
    eprintln!(
        "{} Secrets ({}) and the ConfigMap {CONFIG_MAP}, for namespace {ns} (trust domain {:?})",
        names.len(),
        names.join(", "),
        config.domain.as_str()
    );
    if std::io::stdout().is_terminal() {
        eprintln!(
            "(these hold private keys: redirect them to a file kept out of version control, or pipe them into kubectl apply -f -)"
        );
    }
    Ok(())
}

/// A `kubernetes.io/tls` Secret (its name, its YAML) for every current certificate of every
/// trust domain of the home whose key the home holds.
fn certificate_secrets(home: &Home, own: &TrustDomain, ns: &str) -> Result<Vec<(String, String)>> {
    let pki = home.pki();
    let now = OffsetDateTime::now_utc();
    let mut out: Vec<(String, String)> = Vec::new();
    for domain in pki.domains()? {
        let ca = pki.open(&domain)?;
        let ca_pem = files_read(&ca.ca_path())?;
        for record in ca.records()?.into_iter().filter(|r| r.current) {
            let status = record.status(now);
            if status == Status::Revoked {
                eprintln!("note: {} is revoked: no Secret made for it", record.identity);
                continue;
            }
            if status == Status::Expired {
                eprintln!("warning: {} has expired: renew it (rampart pki renew)", record.identity);
            }
            let (cert, key) = (ca.cert_path(&record.name), ca.key_path(&record.name));
            if !key.is_file() {
                eprintln!("note: {} has no private key in this home: no Secret made for it", record.identity);
                continue;
            }
            let raw = if domain == *own {
                format!("rampart-cert-{}", record.name)
            } else {
                format!("rampart-cert-{}-{}", domain.as_str(), record.name)
            };
            let name = manifest::object_name(&raw)?;
            if out.iter().any(|(n, _)| *n == name) {
                bail!("two certificates would share the Secret name {name}: rename one of them");
            }
            let meta = Meta {
                name: &name,
                namespace: ns,
                component: "certificate",
                annotations: vec![("identity", record.identity.to_string())],
            };
            let data =
                [("tls.crt", files_read(&cert)?), ("tls.key", files_read(&key)?), ("ca.crt", ca_pem.clone())];
            let yaml = secret(&meta, "kubernetes.io/tls", &data);
            out.push((name, yaml));
        }
    }
    Ok(out)
}

fn secret(meta: &Meta<'_>, kind: &str, data: &[(&str, zeroize::Zeroizing<Vec<u8>>)]) -> String {
    let data: Vec<(&str, &[u8])> = data.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    manifest::secret(meta, kind, &data)
}

fn files_read(path: &std::path::Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    Ok(zeroize::Zeroizing::new(rampart_pki::files::read(path)?))
}

/// A namespace is an RFC 1123 label: at most 63 letters, digits and '-'.
fn check_namespace(ns: &str) -> Result<()> {
    if ns.len() > 63 || ns.contains('.') || manifest::object_name(ns).ok().as_deref() != Some(ns) {
        bail!(
            "--namespace {ns:?}: use at most 63 lower-case letters, digits and '-' (alphanumeric at both ends)"
        );
    }
    Ok(())
}

/// The `rampart.toml` of the pods: this home's settings, listening on every address of the pod,
/// with the registry in the cluster's etcd (files laid out by `rampart deploy unpack`).
fn pods_config(config: &Config, args: &K8sSecretsArgs) -> Result<String> {
    let endpoints: Vec<String> = if args.etcd_endpoints.is_empty() {
        (0..3).map(|i| format!("https://rampart-etcd-{i}.rampart-etcd.{}.svc:2379", args.namespace)).collect()
    } else {
        for e in &args.etcd_endpoints {
            if !e.starts_with("https://") || e.parse::<http::Uri>().is_err() {
                bail!("--etcd-endpoints {e:?}: expected https://HOST:PORT (the pods reach etcd over TLS)");
            }
        }
        args.etcd_endpoints.clone()
    };
    let mut pods = config.clone();
    pods.gateway.listen = std::net::SocketAddr::from(([0, 0, 0, 0], 8443));
    let mut etcd = rampart_etcd::EtcdConfig::new(endpoints, prefix(&config.domain));
    let [ca, cert, key] = ETCD_FILES.map(|p| Some(std::path::PathBuf::from(p)));
    (etcd.ca, etcd.cert, etcd.key) = (ca, cert, key);
    pods.store = StoreConfig::Etcd(Box::new(etcd));
    let body = toml::to_string(&pods).context("encoding the pods' rampart.toml")?;
    Ok(format!("# rampart.toml of the pods (made by `rampart deploy k8s-secrets`)\n{body}"))
}

/// The registry's key prefix in etcd: the one the etcd user is confined to.
fn prefix(domain: &TrustDomain) -> String {
    format!("/rampart/{}/", domain.as_str())
}
