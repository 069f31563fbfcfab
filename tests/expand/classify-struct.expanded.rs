#[automatically_derived]
impl ::resilience::Classify for ParseError {
    fn recovery(&self) -> ::resilience::Recovery {
        ::resilience::Recovery::Skip
    }
    fn error_code(&self) -> ::std::borrow::Cow<'_, str> {
        ::std::borrow::Cow::Borrowed("E_PARSE")
    }
    fn category(&self) -> ::std::borrow::Cow<'_, str> {
        ::std::borrow::Cow::Borrowed("ParseError")
    }
    fn severity(&self) -> ::resilience::Severity {
        ::resilience::Severity::Error
    }
}
