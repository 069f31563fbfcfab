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
    let __result = __run
        .call(|| {
            progress.total = photos.len() as u64;
            let mut __at = __run.position();
            for photo in __run.skip(photos) {
                __at.step(progress)?;
                progress.imported_bytes += upload(photo)?;
            }
            __at.end(progress)?;
            Ok(())
        });
    __run.finish(progress, __result)
}
