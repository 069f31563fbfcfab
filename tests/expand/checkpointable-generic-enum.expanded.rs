#[automatically_derived]
impl<T: ::resilience::__private::CheckpointData> ::resilience::Checkpointable
for Phase<T>
where
    Self: ::resilience::__private::CheckpointData,
{
    const SCHEMA: u64 = 0xf3ec29fecb382c3a;
}
