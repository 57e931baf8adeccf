//! The store API: the registry through the caller's ACL.

use http::{Response, StatusCode};
use rampart_auth::Credential;
use rampart_events::EventKind;
use rampart_net::Body;
use rampart_net::contract::store::{self, StoreRequest};
use rampart_pki::Role;
use rampart_store::{AclStore, Grants, LeaseAccess, Store, StoreError};

use super::Caller;
use crate::reply;

/// The registry through the caller's ACL: admins everything; a node its services' state.
/// Every refusal is an event; a registry that cannot be reached is said to be so (503), never
/// taken for an empty grant.
pub(super) async fn store_api(caller: &Caller<'_>, body: &[u8]) -> Response<Body> {
    let (state, principal) = (caller.state, caller.principal);
    let grants = if principal.is_admin() {
        Grants::all()
    } else if let Credential::Certificate(id) = principal.credential()
        && id.role == Role::Node
    {
        let name = id.name.as_str();
        // Its own registration's lease, to attach what must vanish with it (a job's claims).
        let (services, leases) = match state.node_record(name).await {
            Ok(Some(r)) => (r.services, LeaseAccess::Attach(vec![rampart_store::LeaseId(r.lease)])),
            // Deregistered and draining: its in-flight requests may still finish their work.
            Ok(None) => (state.draining_services(name).unwrap_or_default(), LeaseAccess::None),
            Err(e) => return store_error(&e),
        };
        let prefixes: Vec<String> = services.iter().map(|s| format!("services/{s}/")).collect();
        Grants { read: prefixes.clone(), write: prefixes, leases }
    } else {
        return caller.refuse(
            StatusCode::FORBIDDEN,
            EventKind::RegistryForbidden,
            "the registry is for administrators and nodes",
        );
    };
    let Ok(req) = serde_json::from_slice::<StoreRequest>(body) else {
        return caller.refuse(StatusCode::BAD_REQUEST, EventKind::RegistryBadRequest, "not a store request");
    };
    if !req.values_are_base64() {
        return caller.refuse(
            StatusCode::BAD_REQUEST,
            EventKind::RegistryBadRequest,
            "a value is not base64",
        );
    }
    let store = AclStore::new(state.store.clone(), grants);
    match rampart_net::remote_store::execute(&store as &dyn Store, req).await {
        Ok(out) => reply::json(StatusCode::OK, &serde_json::to_value(out).unwrap_or_default()),
        Err(e @ StoreError::Forbidden { .. }) => {
            caller.record(EventKind::RegistryForbidden, &e.to_string());
            store_error(&e)
        }
        Err(e) => store_error(&e),
    }
}

/// The store API's answer for a store error (the node's remote store reads it back as the
/// same typed error).
pub(super) fn store_error(e: &StoreError) -> Response<Body> {
    let (status, out) = store::error_response(e);
    reply::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        &serde_json::to_value(out).unwrap_or_default(),
    )
}
