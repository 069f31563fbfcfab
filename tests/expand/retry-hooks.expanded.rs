#[inline]
fn poll(job: &Job) -> Result<Status, ApiError> {
    use ::resilience::__private::Retryable as _;
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
            ::core::concat!(::core::module_path!(), "::poll"),
            ::resilience::RetryConfig::new(3),
        )
        .budget("api");
    ::resilience::__private::retry_with(
        &__SITE,
        || -> Result<Status, ApiError> { job.status() },
        |__e| ::resilience::__private::Probe(__e).verdict(),
        |__v: &<Result<Status, ApiError> as ::resilience::__private::Outcome>::Ok| Status::is_pending(
            __v,
        ),
        |
            __e: &<Result<Status, ApiError> as ::resilience::__private::Outcome>::Error,
            __n: u32,
            __d: ::core::time::Duration|
        log_retry(__e, __n, __d),
        |__e: <Result<Status, ApiError> as ::resilience::__private::Outcome>::Error| last_known(
            __e,
        ),
    )
}
