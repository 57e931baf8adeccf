//! The built-in services: `hello`, `echo` and `data`.
//!
//! `data` keeps records in the registry under `services/data/records/<id>`, through the
//! gateway's store API, so any replica serves any record and a node's death loses none.

use std::cmp::Ordering;
use std::sync::Arc;

use http::{Method, StatusCode};
use rampart_store::{Expect, Store};
use serde_json::{Map, Value};

use crate::service::{Answer, Answering, Call, Service};

/// The services a node may host without an app behind it (`jobs`: `crate::jobs`).
pub const BUILTINS: [&str; 4] = ["hello", "echo", "data", "jobs"];
/// The ones it hosts when told none.
pub const DEFAULTS: [&str; 3] = ["hello", "echo", "data"];

/// The built-in service `name` (`data` keeps its records in `store`); `None` for another name.
pub fn builtin(name: &str, store: &Arc<dyn Store>) -> Option<Arc<dyn Service>> {
    match name {
        "hello" => Some(Arc::new(Hello)),
        "echo" => Some(Arc::new(Echo)),
        "data" => Some(Arc::new(Data { store: store.clone() })),
        _ => None,
    }
}

/// `hello`: GET → `Hello World!`.
#[derive(Debug)]
pub struct Hello;

impl Service for Hello {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(async move { hello(call.method) })
    }
}

/// `echo`: what the node received, as JSON.
#[derive(Debug)]
pub struct Echo;

impl Service for Echo {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(async move {
            echo(call.method, call.path, call.query, (call.principal, call.client), &call.body)
        })
    }
}

/// `data`: JSON records kept in the registry.
pub struct Data {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Data").finish_non_exhaustive()
    }
}

impl Service for Data {
    fn call<'a>(&'a self, call: Call<'a>) -> Answering<'a> {
        Box::pin(async move {
            let idempotency = call.idempotency_key.map(|k| (call.principal, k));
            data(self.store.as_ref(), call.method, call.query, &call.body, idempotency).await
        })
    }
}

/// Where the data service keeps records.
pub const RECORDS_PREFIX: &str = "services/data/records/";

fn hello(method: &Method) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "hello answers GET");
    }
    Answer::new(StatusCode::OK, "text/plain; charset=utf-8", b"Hello World!".to_vec())
}

/// What the node received, as JSON, with the client address the gateway saw.
fn echo(
    method: &Method,
    path: &str,
    query: Option<&str>,
    (principal, client): (&str, &str),
    body: &[u8],
) -> Answer {
    let body = match std::str::from_utf8(body) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(format!("<{} bytes of binary>", body.len())),
    };
    Answer::json(
        StatusCode::OK,
        &serde_json::json!({"method": method.as_str(), "path": path, "query": query.unwrap_or(""), "principal": principal, "client": client, "body": body}),
    )
}

/// `data`: `POST /data` stores a JSON object; `GET /data?sort=asc|desc&by=FIELD` lists them.
///
/// With an idempotency key (the caller's principal and its `Idempotency-Key`), the record id
/// is derived from the key and written only if absent: a retry or a duplicate, on any replica,
/// finds the record and answers with the same id instead of storing it twice.
async fn data(
    store: &dyn Store,
    method: &Method,
    query: Option<&str>,
    body: &[u8],
    idempotency: Option<(&str, &str)>,
) -> Answer {
    match *method {
        Method::POST => store_record(store, body, idempotency).await,
        Method::GET => list_records(store, query).await,
        _ => Answer::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "data answers GET and POST"),
    }
}

/// `POST /data`: stores a record, once per idempotency key.
async fn store_record(store: &dyn Store, body: &[u8], idempotency: Option<(&str, &str)>) -> Answer {
    let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(body) else {
        return Answer::error(StatusCode::BAD_REQUEST, "bad_request", "a record is a JSON object");
    };
    let id = match idempotency {
        Some((principal, key)) => {
            let scope = format!("{principal}\0{key}");
            hex::encode(&ring::digest::digest(&ring::digest::SHA256, scope.as_bytes()).as_ref()[..8])
        }
        None => {
            let mut raw = [0u8; 8];
            if getrandom::fill(&mut raw).is_err() {
                return Answer::error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "no randomness");
            }
            hex::encode(raw)
        }
    };
    let bytes = Value::Object(record).to_string().into_bytes();
    let key = format!("{RECORDS_PREFIX}{id}");
    match store.compare_and_set(&key, Expect::Absent, Some(bytes), None).await {
        Ok(o) if o.succeeded => Answer::json(StatusCode::OK, &serde_json::json!({"result": "ok", "id": id})),
        // Written before under this key: the earlier attempt's outcome, not a new record.
        Ok(_) if idempotency.is_some() => {
            Answer::json(StatusCode::OK, &serde_json::json!({"result": "ok", "id": id, "duplicate": true}))
        }
        Ok(_) => Answer::error(StatusCode::CONFLICT, "conflict", "record id collision; retry"),
        Err(e) => Answer::registry_unavailable(&e),
    }
}

/// `GET /data?sort=asc|desc&by=FIELD`: every record, sorted.
async fn list_records(store: &dyn Store, query: Option<&str>) -> Answer {
    let params = parse_query(query.unwrap_or(""));
    let desc = match params.iter().find(|(k, _)| k == "sort").map(|(_, v)| v.as_str()) {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Answer::error(StatusCode::BAD_REQUEST, "bad_request", "sort is asc or desc"),
    };
    let by = params.iter().find(|(k, _)| k == "by").map(|(_, v)| v.clone());
    let kvs = match store.range(RECORDS_PREFIX).await {
        Ok(kvs) => kvs,
        Err(e) => return Answer::registry_unavailable(&e),
    };
    let mut records: Vec<(String, Map<String, Value>)> = kvs
        .into_iter()
        .filter_map(|kv| {
            let id = kv.key.strip_prefix(RECORDS_PREFIX)?.to_owned();
            match serde_json::from_slice(&kv.value).ok()? {
                Value::Object(m) => Some((id, m)),
                _ => None,
            }
        })
        .collect();
    records.sort_by(|(ida, a), (idb, b)| {
        let ord = match &by {
            Some(field) => compare_field(a.get(field), b.get(field), desc),
            None => Ordering::Equal,
        };
        ord.then_with(|| if desc { idb.cmp(ida) } else { ida.cmp(idb) })
    });
    let out: Vec<Value> = records
        .into_iter()
        .map(|(id, mut m)| {
            m.insert("_id".into(), Value::String(id));
            Value::Object(m)
        })
        .collect();
    Answer::json(StatusCode::OK, &Value::Array(out))
}

/// Numbers numerically, strings lexically, numbers before strings; records without the field
/// last whatever the direction.
fn compare_field(a: Option<&Value>, b: Option<&Value>, desc: bool) -> Ordering {
    let rank = |v: Option<&Value>| match v {
        Some(Value::Number(_)) => 0,
        Some(Value::String(_)) => 1,
        Some(_) => 2,
        None => 3,
    };
    let (ra, rb) = (rank(a), rank(b));
    if ra == 3 || rb == 3 || ra != rb {
        return ra.cmp(&rb);
    }
    let ord = match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        _ => Ordering::Equal,
    };
    if desc { ord.reverse() } else { ord }
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` decoding for query parameters; a malformed escape stays as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorting_rules() {
        let n = |x: f64| Some(serde_json::json!(x));
        let s = |x: &str| Some(serde_json::json!(x));
        assert_eq!(compare_field(n(2.0).as_ref(), n(10.0).as_ref(), false), Ordering::Less);
        assert_eq!(compare_field(n(2.0).as_ref(), n(10.0).as_ref(), true), Ordering::Greater);
        assert_eq!(compare_field(s("b").as_ref(), s("a").as_ref(), false), Ordering::Greater);
        assert_eq!(compare_field(None, n(1.0).as_ref(), false), Ordering::Greater);
        assert_eq!(compare_field(None, n(1.0).as_ref(), true), Ordering::Greater);
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("sort=desc&by=na%6De"),
            vec![("sort".into(), "desc".into()), ("by".into(), "name".into())]
        );
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("a+b%zz"), "a b%zz");
    }
}
