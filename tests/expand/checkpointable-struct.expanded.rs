#[automatically_derived]
impl ::resilience::__private::Shape for ImportProgress {
    const SHAPE: u64 = 0x27da286fc7eb9afc;
}
#[automatically_derived]
impl ::resilience::Checkpointable for ImportProgress
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
    fn total(&self) -> ::core::option::Option<u64> {
        ::core::option::Option::Some(u64::from(self.total))
    }
}
