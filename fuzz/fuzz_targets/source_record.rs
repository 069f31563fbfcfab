#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| resilience::__private::fuzz::source_record(data));
