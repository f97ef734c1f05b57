//! Compile-time errors of the macros: one UI case per message (`tests/ui/<macro>/{pass,fail}`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/*/pass/*.rs");
    t.compile_fail("tests/ui/*/fail/*.rs");
}
