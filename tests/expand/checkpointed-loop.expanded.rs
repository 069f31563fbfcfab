fn import(
    batch: u32,
    photos: &[Photo],
    progress: &mut ImportProgress,
) -> Result<(), ImportError> {
    let __run = ::resilience::__private::Run::<
        Result<(), ImportError>,
    >::begin(
        ::resilience::FailsafeManager::global(),
        ::resilience::__private::Options::new().every(10),
        ::std::format!("import-{batch}"),
        "import",
        progress,
    )?;
    __run
        .bind(progress)
        .call(|progress| {
            progress.total = photos.len() as u64;
            let mut __at = __run.position();
            let mut __items = __run.skip(photos);
            while __at.resume(&mut __items, progress)? {
                for photo in &mut __items {
                    __at.step(progress);
                    progress.imported_bytes += upload(photo)?;
                }
            }
            Ok(())
        })
}
