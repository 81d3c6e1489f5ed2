// The inputs a target's corpus replay reads on stable: `fuzz/corpus/<target>` and
// `fuzz/regressions/<target>`, at least ten of them (else the corpus is missing). `include!`d by
// crates/*/tests/fuzz_corpus.rs.

fn corpus_inputs(target: &str) -> Vec<Vec<u8>> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) {
            inputs.extend(entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()));
        }
    }
    assert!(
        inputs.len() >= 10,
        "the {target} corpus is missing: {} inputs",
        inputs.len()
    );
    inputs
}
