#[inline]
fn send<E: Classify>(tries: u32, sink: &Sink<E>) -> Result<u32, E> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::send"),
        ::resilience::RetryConfig::new(3),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || -> Result<u32, E> {
            let mut tries = ::resilience::__private::fresh(&tries);
            tries += 1;
            sink.send(tries)
        },
        |__e| ::resilience::__private::classified(__e),
    )
}
