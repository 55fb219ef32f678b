//! Name parsing on arbitrary input: see hello_common::fuzzing::check_name.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hello_common::fuzzing::check_name(data));
