//! `cfg(test_packs)` where `FACEREC_TEST_PACKS` names a folder of model packs: the parity test of
//! those packs (tests/parity.rs) then runs instead of showing as ignored.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(test_packs)");
    println!("cargo::rerun-if-env-changed=FACEREC_TEST_PACKS");
    if std::env::var_os("FACEREC_TEST_PACKS").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=test_packs");
    }
}
