//! The opening example of the crate's design, as written (on the global store).

use super::*;

mod design_sample {
    use std::sync::atomic::{AtomicBool, Ordering};

    use resilience::{Checkpointable, Classify, checkpointed, retry};

    pub struct Photo {
        pub bytes: u64,
        pub damaged: AtomicBool,
    }

    #[derive(Debug, thiserror::Error, Classify)]
    pub enum ImportError {
        #[error("photo is damaged")]
        #[classify(skip)]
        Damaged,
        #[error(transparent)]
        #[classify(transparent)]
        Store(#[from] resilience::Error),
    }

    #[derive(Debug, Default, serde::Serialize, serde::Deserialize, Checkpointable)]
    pub struct ImportProgress {
        #[checkpoint(cursor)]
        pub done: u64, // items completed; managed by the tracked loop
        #[checkpoint(total)]
        pub total: u64, // optional, gives the progress ratio
        pub imported_bytes: u64,
    }

    #[retry(max = 3, initial = "50ms")]
    fn upload(photo: &Photo) -> Result<u64, ImportError> {
        if photo.damaged.swap(false, Ordering::Relaxed) {
            return Err(ImportError::Damaged); // damaged once: the next run succeeds
        }
        Ok(photo.bytes)
    }

    #[checkpointed(every = 10, id = "import-{batch}")]
    pub fn import(
        batch: u32,
        photos: &[Photo],
        progress: &mut ImportProgress,
    ) -> Result<(), ImportError> {
        progress.total = photos.len() as u64;
        for photo in photos {
            // resumes after the last checkpointed item
            progress.imported_bytes += upload(photo)?;
        }
        Ok(())
    }
}

#[test]
fn the_design_example_skips_a_damaged_photo_and_goes_on() {
    use design_sample::{ImportProgress, Photo, import};
    let global = global_store();
    let photos: Vec<Photo> = (0..50)
        .map(|i| Photo { bytes: i, damaged: std::sync::atomic::AtomicBool::new(i == 37) })
        .collect();

    // `ImportError::Damaged` classifies as `skip`: photo 37 is recorded and skipped, and the
    // import goes on with photo 38.
    let mut progress = ImportProgress::default();
    import(7001, &photos, &mut progress).unwrap();
    assert_eq!((progress.done, progress.total), (50, 50));
    assert_eq!(progress.imported_bytes, (0..50).sum::<u64>() - 37);
    let skipped = global.skipped("import-7001").unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!((skipped[0].position, skipped[0].message.as_str()), (37, "photo is damaged"));
    let done: Checkpoint<ImportProgress> = global.load_checkpoint("import-7001").unwrap().unwrap();
    assert_eq!((done.state, done.cursor), (ProcessState::Completed, 50));
    global.discard("import-7001").unwrap();
}
