//! Writes the fuzz targets' seeds (`seeds/<target>/`) from real files: a store with checkpoints
//! of every kind (with an error text, with a run section of input fingerprints and skipped
//! items, grown past their slots), backups, and a listing cache.

use std::path::Path;

use resilience::{Checkpointable, Error, FailsafeManager, ProcessState, checkpointed};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize, Deserialize, Checkpointable)]
struct Rich {
    #[checkpoint(cursor)]
    done: u64,
    signed: i32,
    ratio: f64,
    flag: bool,
    letter: char,
    name: String,
    seen: Vec<u32>,
    extra: Option<std::collections::BTreeMap<String, Vec<u8>>>,
}

#[derive(Debug, thiserror::Error, resilience::Classify)]
enum ImportError {
    #[error("item {0} is bad")]
    #[classify(skip)]
    BadItem(u32),
    #[error(transparent)]
    Resilience(#[from] Error),
}

#[checkpointed(manager = mgr, every = 2, id = "import-{batch}")]
fn import(
    mgr: &FailsafeManager,
    batch: u32,
    items: &[u32],
    state: &mut Rich,
) -> Result<(), ImportError> {
    for &item in items {
        if item % 3 == 0 {
            Err(ImportError::BadItem(item))?;
        }
        state.seen.push(item);
    }
    Ok(())
}

fn main() {
    let out = Path::new(&std::env::args().nth(1).unwrap_or_else(|| "seeds".into())).to_path_buf();
    let work = std::env::temp_dir().join(format!("resilience-seeds-{}", std::process::id()));
    let store = work.join("store");
    let manager = FailsafeManager::builder().dir(&store).max_backups(3).build().unwrap();

    for n in 0..40u32 {
        let state = Rich {
            done: u64::from(n),
            signed: -(n as i32),
            ratio: f64::from(n) / 7.0,
            flag: n % 2 == 0,
            letter: char::from(b'a' + (n % 26) as u8),
            name: format!("job {n}"),
            seen: (0..n * 5).collect(),
            extra: (n % 3 == 0).then(|| [(format!("k{n}"), vec![n as u8; 9])].into()),
        };
        let process =
            [ProcessState::Running, ProcessState::Paused, ProcessState::Completed][n as usize % 3];
        manager.save_checkpoint(&format!("op-{n}"), "Seeds", process, 0.5, &state).unwrap();
    }
    manager
        .save_checkpoint("failed", "Seeds", ProcessState::Failed, 0.1, &Rich::default())
        .unwrap();
    let _ = import(&manager, 7, &(1..20).collect::<Vec<_>>(), &mut Rich::default());
    let _: Result<(), Error> = manager.operations().map(drop);

    let data = work.join("data.bin");
    for version in 0..3u8 {
        std::fs::write(&data, vec![version; 1000]).unwrap();
        manager.create_backup(&data).unwrap();
    }

    let target = |name: &str| {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    let mut count = 0;
    for entry in walk(&store) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&entry).unwrap();
        if name.ends_with(".ckpt") {
            // The first byte is the target's mode: 0 as found, 1 with checksums made to match.
            for mode in [0u8, 1] {
                let seed = [&[mode][..], &bytes].concat();
                std::fs::write(target("checkpoint_file").join(format!("{name}-{mode}")), seed)
                    .unwrap();
            }
        } else if name.ends_with(".bak") {
            std::fs::write(target("backup_name").join(format!("{count}")), &name).unwrap();
        } else if name == "source" {
            std::fs::write(
                target("source_record").join(format!("{count}")),
                &bytes[..bytes.len() - 4],
            )
            .unwrap();
        } else if name == ".catalog" {
            std::fs::write(target("listing_cache").join("catalog"), &bytes[12..]).unwrap();
        } else {
            continue;
        }
        count += 1;
    }
    std::fs::remove_dir_all(&work).unwrap();
    println!("seeds: {count} files from a real store in {}", out.display());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
