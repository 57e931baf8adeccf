//! `rampart.toml` as the binary reads it, section by section into the product's own types
//! (`domain`, `[gateway]` with its grouped and flat keys, `[routes.*]` then checked as the
//! gateway does at start-up, `[node.programs.*]` then checked as the node does), and the whole
//! text as a `[gateway]` table. A gateway configuration that reads writes back and reads the
//! same.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use rampart_gateway::GatewayConfig;
use rampart_gateway::routes::{RouteConfig, Routes};
use rampart_node::program::{Limits, LimitsBook, Overrides};
use rampart_pki::TrustDomain;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(gateway) = toml::from_str::<GatewayConfig>(text) {
        writes_back(&gateway);
    }
    let Ok(file) = toml::from_str::<toml::Table>(text) else { return };
    let section = |name: &str| file.get(name).cloned();
    let _ = section("domain").map(|d| d.try_into::<TrustDomain>());
    if let Some(Ok(gateway)) = section("gateway").map(|g| g.try_into::<GatewayConfig>()) {
        writes_back(&gateway);
    }
    if let Some(Ok(routes)) = section("routes").map(|r| r.try_into::<BTreeMap<String, RouteConfig>>()) {
        let _ = Routes::new(&routes);
    }
    let programs = file.get("node").and_then(|n| n.get("programs")).cloned();
    if let Some(Ok(programs)) = programs.map(|p| p.try_into::<BTreeMap<String, Overrides>>()) {
        let _ = LimitsBook::new(Limits::default(), &programs);
    }
});

fn writes_back(gateway: &GatewayConfig) {
    let written = toml::to_string(gateway).expect("a configuration that reads writes");
    let again: GatewayConfig = toml::from_str(&written).expect("a written configuration reads");
    assert_eq!(toml::to_string(&again).expect("and writes again"), written);
}
