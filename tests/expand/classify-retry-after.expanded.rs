#[automatically_derived]
impl ::resilience::Classify for ApiError {
    fn recovery(&self) -> ::resilience::Recovery {
        match self {
            Self::RateLimited { .. } | Self::Unavailable { .. } => {
                ::resilience::Recovery::Retry
            }
            Self::Denied => ::resilience::Recovery::Abort,
        }
    }
    fn error_code(&self) -> ::std::borrow::Cow<'_, str> {
        match self {
            Self::RateLimited { .. } => {
                ::std::borrow::Cow::Borrowed("ApiError::RateLimited")
            }
            Self::Unavailable { .. } => {
                ::std::borrow::Cow::Borrowed("ApiError::Unavailable")
            }
            Self::Denied => ::std::borrow::Cow::Borrowed("ApiError::Denied"),
        }
    }
    fn category(&self) -> ::std::borrow::Cow<'_, str> {
        ::std::borrow::Cow::Borrowed("ApiError")
    }
    fn severity(&self) -> ::resilience::Severity {
        ::resilience::Severity::Error
    }
    fn retry_after(&self) -> ::core::option::Option<::core::time::Duration> {
        match self {
            Self::RateLimited { wait: __inner, .. } => {
                <Duration as ::resilience::__private::RetryAfterField>::retry_after(
                    __inner,
                )
            }
            Self::Unavailable { hint: __inner, .. } => {
                <Option<
                    Duration,
                > as ::resilience::__private::RetryAfterField>::retry_after(__inner)
            }
            _ => ::core::option::Option::None,
        }
    }
}
