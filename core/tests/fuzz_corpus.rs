//! Replays the fuzz corpus (tests/fuzz/corpus/<target>/: seeds from ../shared/data and
//! every input that once crashed a reader) through the fuzz targets: each must return,
//! whatever it returns. A panic fails the test; an abort or crash ends the binary.

use scdeep_core::fuzz;
use std::path::Path;

#[test]
fn every_corpus_input_is_read_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus");
    for t in fuzz::TARGETS {
        let dir = root.join(t);
        let mut files: Vec<_> =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(
            files.iter().any(|f| f.file_name().unwrap().to_string_lossy().starts_with("seed-")),
            "{}: no seed inputs (make fuzz-seeds)",
            dir.display()
        );
        for f in &files {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| fuzz::run(t, &data));
            assert!(r.is_ok(), "fuzz target {t} panicked on {}", f.display());
        }
    }
    std::fs::remove_dir_all(fuzz::scratch()).unwrap();
}

/// The seeds are valid inputs: each reader must accept them, or the fuzzer starts from
/// error paths only.
#[test]
fn seeds_are_valid_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/corpus");
    for t in fuzz::TARGETS {
        for e in std::fs::read_dir(root.join(t)).unwrap() {
            let f = e.unwrap().path();
            if !f.file_name().unwrap().to_string_lossy().starts_with("seed-") {
                continue;
            }
            let data = std::fs::read(&f).unwrap();
            if let Err(e) = fuzz::check(t, &data) {
                panic!("seed {} is not read by target {t}: {e}", f.display());
            }
        }
    }
    std::fs::remove_dir_all(fuzz::scratch()).unwrap();
}
