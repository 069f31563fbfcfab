/// Sends it.
#[inline]
async fn send<T: Clone>(&mut self, msg: &T) -> Result<usize, SendError> {
    #![allow(clippy::needless_return)]
    use ::resilience::__private::Retryable as _;
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        "socket send",
        ::resilience::RetryConfig::new(5)
            .initial_delay(::core::time::Duration::from_millis(250))
            .max_delay(::core::time::Duration::from_secs(2))
            .multiplier(1.5)
            .jitter(0.25)
            .max_elapsed(::core::time::Duration::from_secs(60)),
    );
    ::resilience::__private::retry_if_async_borrowing(
            &__SITE,
            async || -> Result<usize, SendError> { self.socket.send(msg.clone()).await },
            |__e| {
                ::resilience::__private::Probe(__e)
                    .verdict_when(SendError::is_transient(__e))
            },
        )
        .await
}
