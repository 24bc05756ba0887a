//! One libFuzzer binary for every reader: SCDEEP_FUZZ_TARGET names the target
//! (scdeep_core::fuzz::TARGETS); scripts/fuzz.py runs each in turn.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static TARGET: OnceLock<String> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let t =
        TARGET.get_or_init(|| std::env::var("SCDEEP_FUZZ_TARGET").expect("set SCDEEP_FUZZ_TARGET to one of scdeep_core::fuzz::TARGETS"));
    scdeep_core::fuzz::run(t, data);
});
