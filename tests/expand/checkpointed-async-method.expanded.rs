/// Syncs one folder.
pub async fn sync(
    &mut self,
    folder: &Folder,
    out: &mut Vec<u8>,
    progress: &mut SyncState,
) -> anyhow::Result<usize> {
    use ::resilience::__private::{self as __rt, Skippable as _, Fingerprint as _};
    let __inputs = [("folder", __rt::Probe(&folder).fingerprint())];
    let __run: __rt::Run<anyhow::Result<usize>> = __rt::Run::begin(
        __rt::Options::new("Folder sync")
            .interval_ms(5000)
            .inputs(&__inputs)
            .manager(&(&self.store)),
        ::core::concat!(::core::module_path!(), "::sync"),
        progress,
    )?;
    let __result = __run
        .call_async(async {
            let mut setup = Vec::new();
            for file in &folder.pending {
                setup.push(file);
            }
            let mut __at = __run.skipping(|__e| __rt::Probe(__e).skippable());
            let mut __items = __run.skip(folder.files.iter().skip(1));
            while __at.resume(&mut __items, progress)? {
                '__item: for file in &mut __items {
                    __at.step(progress);
                    if file.is_hidden() {
                        continue;
                    }
                    match __at.ok(self.client.upload(file, out).await)? {
                        ::core::option::Option::Some(__v) => __v,
                        ::core::option::Option::None => continue '__item,
                    };
                }
            }
            Ok(setup.len())
        })
        .await;
    __run.finish(progress, __result)
}
