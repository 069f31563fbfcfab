#[automatically_derived]
impl ::resilience::__private::Shape for SyncState {
    const SHAPE: u64 = ::resilience::__private::schema(
        0xbf5ff114bf59352d,
        &[
            (
                1,
                <BTreeMap<
                    String,
                    Option<Folder>,
                > as ::resilience::__private::Shape>::SHAPE,
            ),
        ],
    );
}
#[automatically_derived]
impl ::resilience::Checkpointable for SyncState
where
    Self: ::resilience::__private::CheckpointData,
{
    const SCHEMA: u64 = <Self as ::resilience::__private::Shape>::SHAPE;
    fn cursor(&self) -> u64 {
        self.done
    }
    fn set_cursor(&mut self, n: u64) {
        self.done = n;
    }
}
