//! `rampart call`: a request through a gateway, with the home's admin certificate and CA by
//! default, a token, or another certificate; `--encrypt` seals the body in a payload envelope
//! and opens a sealed answer. Prints the body; the exit code follows the status.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::BodyExt;
use rampart_net::TlsMaterial;
use rampart_pki::Role;

use crate::cli::CallArgs;
use crate::cmd::block_on;
use crate::home::Home;

/// The answer's status was not a success: the exit code says which class.
#[derive(Debug)]
pub struct HttpStatus(pub u16);

impl HttpStatus {
    /// 3 for 3xx, 4 for 4xx, 5 for 5xx.
    pub fn exit_code(&self) -> u8 {
        u8::try_from(self.0 / 100).unwrap_or(1)
    }
}

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP status {}", self.0)
    }
}

impl std::error::Error for HttpStatus {}

use rampart_net::contract::header as wire;
use rampart_net::contract::media::{FERNET, JSON};

pub fn run(home: &Home, args: CallArgs) -> Result<()> {
    let keyring = if args.encrypt { Some(rampart_crypto::file::load(&home.keyring_path())?) } else { None };
    let a = fetch(home, &args, keyring.as_ref())?;
    if args.verbose {
        eprintln!("{:?} {}", a.version, a.status);
        for (k, v) in &a.headers {
            eprintln!("{k}: {}", v.to_str().unwrap_or("<binary>"));
        }
    }
    print_answer(&a.headers, &a.body, keyring.as_ref())?;
    if !a.status.is_success() {
        eprintln!("rampart call: {}", a.status);
        return Err(HttpStatus(a.status.as_u16()).into());
    }
    Ok(())
}

/// What a gateway answered.
#[derive(Debug)]
pub struct Answered {
    /// Its status.
    pub status: http::StatusCode,
    /// Its headers.
    pub headers: http::HeaderMap,
    /// Its body (as sent: sealed when it came sealed).
    pub body: bytes::Bytes,
    /// Its HTTP version.
    pub version: http::Version,
}

/// Sends the request of `args` (sealed with `keyring`, when given) and reads the answer.
pub fn fetch(home: &Home, args: &CallArgs, keyring: Option<&rampart_crypto::Keyring>) -> Result<Answered> {
    let config = home.config()?;
    let (bases, path) = targets(args)?;
    let tls = tls(home, &config, args)?;
    let outgoing = Outgoing::new(args, keyring)?;
    let gateways = rampart_net::gateways::Gateways::new(&bases);
    let (status, headers, bytes, version) = block_on(async move {
        let client = rampart_net::client::https_client(tls, Duration::from_secs(5));
        let timeout = Duration::from_secs(60);
        let repeatable = outgoing.repeatable();
        let build = |base: &str| outgoing.to(base, &path);
        let sent = if repeatable {
            gateways.send_idempotent(&client, timeout, build).await
        } else {
            gateways.send(&client, timeout, build).await
        };
        let (_, resp) = sent.context("request failed")?;
        let (parts, body) = resp.into_parts();
        let bytes = http_body_util::Limited::new(body, 256 << 20)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!(e))?
            .to_bytes();
        Ok::<_, anyhow::Error>((parts.status, parts.headers, bytes, parts.version))
    })??;
    Ok(Answered { status, headers, body: bytes, version })
}

/// The gateways to try (the URL's, then each `--gateway`) and the path with its query.
fn targets(args: &CallArgs) -> Result<(Vec<String>, String)> {
    let uri: http::Uri = args.url.parse().with_context(|| format!("{:?} is not a URL", args.url))?;
    if uri.scheme_str() != Some("https") {
        bail!("{}: rampart calls go over TLS: use https://", args.url);
    }
    let Some(authority) = uri.authority() else { bail!("{}: no gateway address in the URL", args.url) };
    let mut bases = vec![format!("https://{authority}")];
    for g in &args.gateways {
        let base: http::Uri = g.parse().with_context(|| format!("--gateway {g:?} is not a URL"))?;
        match (base.scheme_str(), base.authority()) {
            (Some("https"), Some(a)) => bases.push(format!("https://{a}")),
            _ => bail!("--gateway {g:?}: expected https://HOST:PORT"),
        }
    }
    Ok((bases, uri.path_and_query().map_or("/", |pq| pq.as_str()).to_owned()))
}

/// The client's TLS: the CA (and CRL) of the home's domain, and a certificate — the one given,
/// none with a token, the home's admin certificate otherwise.
fn tls(home: &Home, config: &crate::home::Config, args: &CallArgs) -> Result<rustls::ClientConfig> {
    let dir = home.pki().domain_dir(&config.domain);
    let c = &args.credentials;
    let ca = c.ca.clone().unwrap_or_else(|| dir.join("ca.pem"));
    let (roots, crls) = TlsMaterial::load_roots(&ca, Some(&dir.join("crl.pem")))?;
    let identity = match (&c.cert, &c.key, &c.token) {
        (Some(c), Some(k), _) => Some(rampart_net::tls::LiveIdentity::load(c, k)?),
        (_, _, Some(_)) => None,
        _ => Some(home.material(config, "admin")?.identity),
    };
    Ok(rampart_net::tls::client_config(
        &config.domain,
        roots,
        crls,
        identity,
        &[Role::Gateway, Role::Node, Role::Peer],
    )?)
}

/// The request every attempt sends: method, headers and body, sealed when asked.
struct Outgoing {
    template: Request<()>,
    body: bytes::Bytes,
    /// The plaintext and keyring, when each attempt seals it anew: an envelope re-sent is a
    /// replay unless it carries the same Idempotency-Key (then it is a retry).
    reseal: Option<(Vec<u8>, rampart_crypto::Keyring)>,
}

impl Outgoing {
    fn new(args: &CallArgs, keyring: Option<&rampart_crypto::Keyring>) -> Result<Self> {
        let mut body = match &args.data {
            Some(d) if d.starts_with('@') => {
                std::fs::read(&d[1..]).with_context(|| format!("reading {}", &d[1..]))?
            }
            Some(d) => d.clone().into_bytes(),
            None => Vec::new(),
        };
        let method = match &args.method {
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .with_context(|| format!("{m:?} is not an HTTP method"))?,
            None if args.data.is_some() => Method::POST,
            None => Method::GET,
        };
        let mut req = Request::builder().method(method);
        for h in &args.headers {
            let Some((name, value)) = h.split_once(':') else { bail!("-H {h:?}: expected \"Name: value\"") };
            req = req.header(
                HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("-H {h:?}: bad header name"))?,
                HeaderValue::from_str(value.trim()).with_context(|| format!("-H {h:?}: bad header value"))?,
            );
        }
        let mut plain = None;
        if let Some(k) = keyring {
            if !body.is_empty() {
                let sealed = k.encrypt(&body)?.into_bytes(); // refuses what cannot be sealed, now
                plain = Some(std::mem::replace(&mut body, sealed));
                req = req.header(CONTENT_TYPE, FERNET);
            }
            req = req.header(ACCEPT, FERNET);
        } else if !body.is_empty()
            && !args.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            req = req.header(CONTENT_TYPE, JSON);
        }
        if let Some(t) = &args.credentials.token {
            req = req.header(AUTHORIZATION, format!("Bearer {}", t.trim()));
        }
        let template = req.body(())?;
        let keyed = template.headers().contains_key(wire::IDEMPOTENCY_KEY);
        let reseal = if keyed { None } else { plain.zip(keyring.cloned()) };
        Ok(Outgoing { template, body: bytes::Bytes::from(body), reseal })
    }

    /// Whether it may be sent again to another gateway when an answer was lost.
    fn repeatable(&self) -> bool {
        self.template.headers().contains_key(wire::IDEMPOTENCY_KEY) || self.template.method().is_idempotent()
    }

    /// The request to the gateway at `base`.
    fn to(&self, base: &str, path: &str) -> Result<Request<rampart_net::Body>, http::Error> {
        let body = match &self.reseal {
            Some((plain, k)) => {
                k.encrypt(plain).map(bytes::Bytes::from).unwrap_or_else(|_| self.body.clone())
            }
            None => self.body.clone(),
        };
        let mut r = Request::new(rampart_net::full(body));
        *r.method_mut() = self.template.method().clone();
        *r.headers_mut() = self.template.headers().clone();
        *r.uri_mut() = format!("{base}{path}").parse().map_err(http::Error::from)?;
        Ok(r)
    }
}

/// Writes the answer's body on stdout, opened when it came sealed.
fn print_answer(
    headers: &http::HeaderMap,
    bytes: &[u8],
    keyring: Option<&rampart_crypto::Keyring>,
) -> Result<()> {
    let sealed = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) == Some(FERNET);
    let out = match (keyring, sealed) {
        (Some(k), true) => {
            let token = std::str::from_utf8(bytes).context("sealed answer is not text")?;
            k.decrypt(token, Some(300)).context("opening the sealed answer")?.plaintext
        }
        _ => bytes.to_vec(),
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    if !out.ends_with(b"\n") && std::io::IsTerminal::is_terminal(&stdout) {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}
