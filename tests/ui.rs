//! Compile-fail tests: each misuse of a macro gives one clear error at the offending token.
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite cargo test --test ui` (the
//! toolchain is pinned in `rust-toolchain.toml`, so the compiler's wording is stable).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    // With the `tokio` feature on (as under `--all-features`) this case compiles; `.ci/run`
    // runs this test once more without features to check it.
    #[cfg(not(feature = "tokio"))]
    t.compile_fail("tests/ui/no-tokio/*.rs");
}
