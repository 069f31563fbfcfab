async fn fetch(&self, key: &str) -> Result<Vec<u8>, FetchError> {
    use ::resilience::__private::Retryable as _;
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::fetch"),
        ::resilience::RetryConfig::new(3),
    );
    ::resilience::__private::retry_if_async(
            &__SITE,
            || async {
                let __result: Result<Vec<u8>, FetchError> = {
                    let url = self.base.join(key)?;
                    self.client.get(url).await
                };
                __result
            },
            |__e| ::resilience::__private::Probe(__e).verdict(),
        )
        .await
}
