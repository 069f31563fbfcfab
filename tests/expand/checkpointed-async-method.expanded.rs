/// Syncs one folder.
pub async fn sync(
    &mut self,
    folder: &Folder,
    out: &mut Vec<u8>,
    progress: &mut SyncState,
) -> anyhow::Result<usize> {
    let __run = ::resilience::__private::Run::<
        anyhow::Result<usize>,
    >::begin(
        &(&self.store),
        ::resilience::__private::Options::new().interval_ms(5000),
        ::core::concat!(::core::module_path!(), "::sync"),
        "Folder sync",
        progress,
    )?;
    let __result = __run
        .call_async(async {
            let mut setup = Vec::new();
            for file in &folder.pending {
                setup.push(file);
            }
            let mut __at = __run.position();
            let mut __items = __run.skip(folder.files.iter().skip(1));
            while __at.resume(&mut __items, progress)? {
                for file in &mut __items {
                    __at.step(progress);
                    if file.is_hidden() {
                        continue;
                    }
                    self.client.upload(file, out).await?;
                }
            }
            Ok(setup.len())
        })
        .await;
    __run.finish(progress, __result)
}
