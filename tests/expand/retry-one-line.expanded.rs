#[inline]
pub fn load(path: &str) -> Result<String, std::io::Error> {
    use ::resilience::__private::Retryable as _;
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::load"),
        ::resilience::RetryConfig::new(3)
            .initial_delay(::core::time::Duration::from_millis(50)),
    );
    ::resilience::__private::retry_if(
        &__SITE,
        || -> Result<String, std::io::Error> { std::fs::read_to_string(path) },
        |__e| ::resilience::__private::Probe(__e).verdict(),
    )
}
