//! Build time of a crate with 200 `#[retry]` functions against the same crate with
//! `#[tracing::instrument]`, and the expansion sizes of the snapshot tests.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Config;
use crate::harness::{Batch, Variant, compare, goal, print_table};

const FUNCTIONS: usize = 200;

struct Generated {
    name: &'static str,
    dir: PathBuf,
    edits: u64,
}

fn generate(root: &Path, name: &'static str, dependency: &str, attribute: &str) -> Generated {
    let dir = root.join(name);
    fs::create_dir_all(dir.join("src")).expect("create the crate");
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [workspace]\n\n[dependencies]\n{dependency}\n"
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    write_if_changed(&dir.join("src/lib.rs"), &source(attribute, 0));
    Generated { name, dir, edits: 0 }
}

fn source(attribute: &str, edit: u64) -> String {
    let mut s = format!(
        "//! Generated: {FUNCTIONS} functions under `{attribute}` (edit {edit}).\n\
         #![allow(dead_code)]\n\n\
         #[derive(Debug)]\npub struct Failure(pub u64);\n\n\
         impl std::fmt::Display for Failure {{\n    \
             fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\n        \
                 write!(f, \"failure {{}}\", self.0)\n    }}\n}}\n\n\
         impl std::error::Error for Failure {{}}\n"
    );
    for i in 0..FUNCTIONS {
        s.push_str(&format!(
            "\n{attribute}\npub fn step_{i}(input: u64, scale: &u64) -> Result<u64, Failure> {{\n    \
                 if input % {m} == 0 {{ Err(Failure(input)) }} else {{ Ok(input * scale + {i}) }}\n}}\n",
            m = i + 2
        ));
    }
    s
}

fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).expect("write generated file");
    }
}

fn cargo_build(krate: &Generated, target: &Path) -> Duration {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let start = Instant::now();
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path"])
        .arg(krate.dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo");
    let elapsed = start.elapsed();
    if !out.status.success() {
        panic!("building {} failed:\n{}", krate.name, String::from_utf8_lossy(&out.stderr));
    }
    elapsed
}

pub fn build_time(cfg: &Config) -> bool {
    let root = cfg.scratch_kept("build-time");
    let target = root.join("target");
    let resilience = Path::new(env!("CARGO_MANIFEST_DIR")).join("../resilience");
    let resilience = resilience.canonicalize().expect("the resilience crate");
    let ours = generate(
        &root,
        "gen_retry",
        &format!("resilience = {{ path = {:?} }}", resilience.display().to_string()),
        "#[resilience::retry]",
    );
    let theirs = generate(
        &root,
        "gen_instrument",
        "tracing = { version = \"0.1\", default-features = false, features = [\"attributes\", \"std\"] }",
        "#[tracing::instrument]",
    );
    // Warm: the dependencies are built once, outside the measurement.
    for k in [&ours, &theirs] {
        cargo_build(k, &target);
    }
    let edit = |k: &mut Generated, attribute: &str| {
        k.edits += 1;
        fs::write(k.dir.join("src/lib.rs"), source(attribute, k.edits)).expect("edit");
        cargo_build(k, &target)
    };
    let ours = std::cell::RefCell::new(ours);
    let theirs = std::cell::RefCell::new(theirs);
    let mut variants = [
        Variant::new("#[tracing::instrument]", |_| {
            edit(&mut theirs.borrow_mut(), "#[tracing::instrument]")
        }),
        Variant::new("#[resilience::retry]", |_| {
            edit(&mut ours.borrow_mut(), "#[resilience::retry]")
        }),
    ];
    let r = compare(cfg.reps(3), Batch::Fixed(1), &mut variants);
    print_table(
        &format!(
            "8. `cargo build` (debug) of a crate with {FUNCTIONS} annotated functions, dependencies warm"
        ),
        &r,
        "#[tracing::instrument]",
        false,
    );
    let ratio = r.paired_speedup("#[resilience::retry]", "#[tracing::instrument]");
    goal(&format!("no slower than #[tracing::instrument] ({ratio:.2}× its speed)"), ratio >= 1.0)
}

/// Non-blank lines of the snapshot files in `tests/expand/`.
pub fn expansion_sizes(_cfg: &Config) -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/expand");
    let count = |name: &str| -> Option<usize> {
        let text = fs::read_to_string(dir.join(name)).ok()?;
        Some(text.lines().filter(|l| !l.trim().is_empty()).count())
    };
    println!("\n## Expansion sizes (non-blank lines of tests/expand snapshots)");
    let mut ok = true;
    for (file, what, limit) in [
        ("retry-one-line.expanded.rs", "one-line fn under #[retry]", 15),
        ("checkpointed-loop.expanded.rs", "#[checkpointed] fn with a loop", 30),
    ] {
        match count(file) {
            Some(n) => {
                ok &= goal(&format!("{what}: {n} lines ≤ {limit} ({file})"), n <= limit);
            }
            None => println!("{file}: not found"),
        }
    }
    ok
}
