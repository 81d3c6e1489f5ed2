//! The scope table of docs/COLLECTIONS-AND-KEYS.md is the scope table of
//! `facerec_core::collection`, rendered.

use facerec_core::Scope;

#[test]
fn the_readme_lists_every_scope() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/COLLECTIONS-AND-KEYS.md"
    ))
    .expect("docs/COLLECTIONS-AND-KEYS.md");
    let mut table = String::from("| scope | allows |\n|---|---|\n");
    for scope in Scope::ALL {
        table.push_str(&format!("| `{scope}` | {} |\n", scope.description()));
    }
    let start = "<!-- scopes: rendered from crates/core/src/collection.rs -->\n";
    let found = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once("<!-- end of scopes -->"))
        .map(|(t, _)| t);
    assert_eq!(
        found,
        Some(table.as_str()),
        "paste into docs/COLLECTIONS-AND-KEYS.md:\n{table}"
    );
}
