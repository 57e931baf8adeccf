//! The first bytes of a connection to a passthrough listener: a PROXY protocol header (v1 or
//! v2) if it starts with one, then the TLS ClientHello whose server name routes it. The header
//! is read without a byte past it; the ClientHello reads the same whole or a few bytes at a
//! time, and what it keeps is exactly what came.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_fuzz::{Trickle, block_on};
use rampart_net::hello::read_client_hello;
use rampart_net::proxy_header::read_header;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let header = block_on(read_header(&mut rest));
    if header.is_ok() {
        let mut alone = &data[..data.len() - rest.len()];
        assert_eq!(block_on(read_header(&mut alone)), header, "the header needed a byte past its end");
    } else {
        rest = data;
    }
    let soon = || tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let whole = block_on(read_client_hello(&mut &rest[..], soon()));
    let step = usize::from(rest.first().copied().unwrap_or(1) % 16) + 1;
    let trickled = block_on(read_client_hello(&mut Trickle { rest, step }, soon()));
    match (&whole, &trickled) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.server_name, b.server_name);
            assert!(rest.starts_with(&a.bytes) && rest.starts_with(&b.bytes));
        }
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => panic!("read whole and in pieces disagree: {e}"),
        (Err(_), Err(_)) => {}
    }
});
