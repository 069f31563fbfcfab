#[automatically_derived]
impl<T: ::resilience::__private::Shape> ::resilience::__private::Shape for Phase<T> {
    const SHAPE: u64 = ::resilience::__private::schema(
        0xf3ec29fecb382c3a,
        &[(1, <T as ::resilience::__private::Shape>::SHAPE)],
    );
}
#[automatically_derived]
impl<
    T: ::resilience::__private::CheckpointData + ::resilience::__private::Shape,
> ::resilience::Checkpointable for Phase<T>
where
    Self: ::resilience::__private::CheckpointData,
{
    const SCHEMA: u64 = <Self as ::resilience::__private::Shape>::SHAPE;
}
