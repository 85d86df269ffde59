//! Hostile input for the streaming BER reader and the SignedData parser: must never panic,
//! never allocate beyond the limits, always return.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use segel_agent::cms::ber::BerReader;
use segel_agent::cms::verify::{VerifyOptions, verify_stream};

fuzz_target!(|data: &[u8]| {
    let _ = BerReader::new(data).read_element_der();
    let _ = BerReader::new(data).skip_element();
    let mut r = BerReader::new(data);
    if let Ok(h) = r.read_header() {
        if let Ok(mut s) = r.octet_string(h) {
            let _ = s.read_to_end(&mut Vec::new());
        }
    }
    let mut r = BerReader::new(data);
    let _ = verify_stream(&mut r, None, &mut std::io::sink(), &VerifyOptions::default());
});
