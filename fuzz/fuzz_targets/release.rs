#![no_main]
// Fuzz target: outpost::fuzz_api::release (see src/fuzz_api.rs).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    outpost::fuzz_api::release(data);
});
