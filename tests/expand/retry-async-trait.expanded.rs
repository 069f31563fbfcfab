fn get<'life0, 'async_trait>(
    &'life0 self,
    key: String,
) -> Pin<Box<dyn Future<Output = Result<u32, ApiError>> + Send + 'async_trait>>
where
    'life0: 'async_trait,
    Self: 'async_trait,
{
    Box::pin(async move {
        if let Some(__ret) = None::<Result<u32, ApiError>> {
            #[allow(unreachable_code)] return __ret;
        }
        let __self = self;
        let key = key;
        let __ret: Result<u32, ApiError> = {
            use ::resilience::__private::Retryable as _;
            static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
                ::core::concat!(::core::module_path!(), "::get"),
                ::resilience::RetryConfig::new(3),
            );
            ::resilience::__private::retry_if_async(
                    &__SITE,
                    || async {
                        let __result: Result<u32, ApiError> = {
                            __self.client.get(&key).await
                        };
                        __result
                    },
                    |__e| ::resilience::__private::Probe(__e).verdict(),
                )
                .await
        };
        #[allow(unreachable_code)] __ret
    })
}
