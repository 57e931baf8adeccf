//! The wire contract's bodies as a gateway or node receives them (registration, admission,
//! envelope claims, store requests and answers, the catalog) and a node's event report: each
//! parse that succeeds writes back to the same value; a store request said to be base64 decodes;
//! a reported event's texts are bounded without a panic, whatever their characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_events::NewEvent;
use rampart_net::contract::Catalog;
use rampart_net::contract::internal::{AdmitRequest, ClaimRequest, Registered, Registration};
use rampart_net::contract::store::{self, StoreRequest, StoreResponse, WireExpect};

fuzz_target!(|data: &[u8]| {
    if let Ok(reg) = serde_json::from_slice::<Registration>(data) {
        let _ = reg.services.iter().all(|s| rampart_auth::ServiceName::parse(s).is_ok());
        assert_eq!(round_trip(&reg), reg);
    }
    if let Ok(r) = serde_json::from_slice::<Registered>(data) {
        assert_eq!(round_trip(&r), r);
    }
    if let Ok(r) = serde_json::from_slice::<AdmitRequest>(data) {
        assert_eq!(round_trip(&r), r);
    }
    if let Ok(r) = serde_json::from_slice::<ClaimRequest>(data) {
        assert_eq!(round_trip(&r), r);
    }
    if let Ok(r) = serde_json::from_slice::<Catalog>(data) {
        assert_eq!(round_trip(&r), r);
    }
    if let Ok(req) = serde_json::from_slice::<StoreRequest>(data)
        && req.values_are_base64()
    {
        let values: Vec<&String> = match &req {
            StoreRequest::Put { value, .. } => vec![value],
            StoreRequest::Cas { expect, value, .. } => {
                let expected = match expect {
                    WireExpect::Value(v) => Some(v),
                    _ => None,
                };
                expected.into_iter().chain(value).collect()
            }
            _ => vec![],
        };
        for v in values {
            assert!(store::decode(v).is_ok(), "{v:?} passed as base64");
        }
    }
    if let Ok(resp) = serde_json::from_slice::<StoreResponse>(data) {
        for kv in resp.kv.into_iter().chain(resp.kvs.into_iter().flatten()) {
            let _ = rampart_store::KeyValue::try_from(kv);
        }
    }
    if let Ok(event) = serde_json::from_slice::<NewEvent>(data) {
        let before = event.clone();
        let cut = event.bounded();
        assert!(cut.reason.len() <= 512 && before.reason.starts_with(&cut.reason));
        assert!(cut.source.len() <= 256 && before.source.starts_with(&cut.source));
        let pairs =
            [(&before.peer, &cut.peer), (&before.principal, &cut.principal), (&before.service, &cut.service)];
        for (was, is) in pairs.into_iter().chain([(&before.node, &cut.node)]) {
            if let (Some(was), Some(is)) = (was, is) {
                assert!(is.len() <= 256 && was.starts_with(is.as_str()));
            }
        }
        let _ = cut.severity();
    }
});

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let json = serde_json::to_vec(value).expect("a parsed message writes");
    serde_json::from_slice(&json).expect("a written message reads back")
}
