fn import(
    batch: u32,
    photos: &[Photo],
    progress: &mut ImportProgress,
) -> Result<(), ImportError> {
    use ::resilience::__private::{self as __rt, Skippable as _, Fingerprint as _};
    let __inputs = [("photos", __rt::Probe(&photos).fingerprint())];
    let __run: __rt::Run<Result<(), ImportError>> = __rt::Run::begin(
        __rt::Options::new("import").every(10).inputs(&__inputs),
        ::std::format!("import-{batch}"),
        progress,
    )?;
    let __op = __run.bind(progress);
    __op.call(|progress| {
        progress.total = photos.len() as u64;
        let mut __at = __run.skipping(|__e| __rt::Probe(__e).skippable());
        let mut __items = __run.skip(photos);
        while __at.resume(&mut __items, progress)? {
            '__item: for photo in &mut __items {
                __at.step(progress);
                progress.imported_bytes
                    += match __at.ok(upload(photo))? {
                        ::core::option::Option::Some(__v) => __v,
                        ::core::option::Option::None => continue '__item,
                    };
            }
        }
        Ok(())
    })
}
