//! The table of error codes in docs/API.md is the code table, rendered: this fails when they part.

use facerec_types::ErrorCode;

const BEGIN: &str = "<!-- error codes: rendered from crates/types/src/error_code.rs -->";
const END: &str = "<!-- end of error codes -->";

fn rendered() -> String {
    let mut codes: Vec<ErrorCode> = ErrorCode::ALL.to_vec();
    codes.sort_by_key(|c| c.status());
    let mut out = String::from(
        "| status | code | meaning | CompreFace (status, code) | DeepStack status |\n|---|---|---|---|---|\n",
    );
    for code in codes {
        let cf = code.compreface();
        out.push_str(&format!(
            "| {} | `{}` | {} | {}, {} | {} |\n",
            code.status(),
            code,
            code.description(),
            cf.status,
            cf.code,
            code.deepstack_status()
        ));
    }
    out
}

#[test]
fn the_readme_lists_every_code_as_the_table_says() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md"))
        .expect("docs/API.md");
    let start = readme
        .find(BEGIN)
        .expect("docs/API.md marks its error table")
        + BEGIN.len();
    let end = readme.find(END).expect("docs/API.md ends its error table");
    let table = readme[start..end].trim();
    assert_eq!(
        table,
        rendered().trim(),
        "the error table of docs/API.md differs from the code table; put this between its markers:\n{}",
        rendered()
    );
}
