#[automatically_derived]
impl ::resilience::Classify for FetchError
where
    std::io::Error: ::resilience::Classify,
{
    fn recovery(&self) -> ::resilience::Recovery {
        match self {
            Self::Timeout => ::resilience::Recovery::Retry,
            Self::BadRecord { .. } => ::resilience::Recovery::Skip,
            Self::Denied(..) => ::resilience::Recovery::Abort,
            Self::Io(__inner) => ::resilience::Classify::recovery(__inner),
        }
    }
    fn error_code(&self) -> ::std::borrow::Cow<'_, str> {
        match self {
            Self::Timeout => ::std::borrow::Cow::Borrowed("E_TIMEOUT"),
            Self::BadRecord { .. } => {
                ::std::borrow::Cow::Borrowed("FetchError::BadRecord")
            }
            Self::Denied(..) => ::std::borrow::Cow::Borrowed("FetchError::Denied"),
            Self::Io(__inner) => ::resilience::Classify::error_code(__inner),
        }
    }
    fn category(&self) -> ::std::borrow::Cow<'_, str> {
        match self {
            Self::Timeout | Self::BadRecord { .. } | Self::Denied(..) => {
                ::std::borrow::Cow::Borrowed("network")
            }
            Self::Io(__inner) => ::resilience::Classify::category(__inner),
        }
    }
    fn severity(&self) -> ::resilience::Severity {
        match self {
            Self::Timeout => ::resilience::Severity::Warning,
            Self::BadRecord { .. } => ::resilience::Severity::Error,
            Self::Denied(..) => ::resilience::Severity::Critical,
            Self::Io(__inner) => ::resilience::Classify::severity(__inner),
        }
    }
    fn retry_after(&self) -> ::core::option::Option<::core::time::Duration> {
        match self {
            Self::Io(__inner) => ::resilience::Classify::retry_after(__inner),
            _ => ::core::option::Option::None,
        }
    }
}
