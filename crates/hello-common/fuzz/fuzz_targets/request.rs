//! Request parsing (Idempotency-Key header and send body) on arbitrary input: see
//! hello_common::fuzzing::check_request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hello_common::fuzzing::check_request(data));
