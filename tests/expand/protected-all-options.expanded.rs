fn nightly(db: &str, report: &mut Report) -> Result<(), JobError> {
    static __SITE: ::resilience::__private::RetrySite = ::resilience::__private::RetrySite::new(
        ::core::concat!(::core::module_path!(), "::nightly"),
        ::resilience::RetryConfig::new(3)
            .initial_delay(::core::time::Duration::from_secs(1)),
    );
    use ::resilience::__private::{self as __rt, Skippable as _};
    let __run = __rt::Protect::<
        Result<(), JobError>,
    >::begin(
        __rt::Options::new("nightly").every(5),
        ::std::format!("nightly-{db}"),
        report,
        ::resilience::__private::Protection::new(
                &HANDLER,
                |__e, __h, __c| ::resilience::__private::record_error!(__h, __e, __c),
            )
            .backup(::std::format!("data/{db}.db"))
            .backup(::std::format!("data/{db}.wal"))
            .skip_missing()
            .restore_on_failure(),
    )?;
    let __result = __run
        .call_retry(
            &__SITE,
            |__e| {
                use ::resilience::__private::Retryable as _;
                ::resilience::__private::Probe(__e).verdict()
            },
            report,
            |report| {
                let mut __at = __run.skipping(|__e| __rt::Probe(__e).skippable());
                let mut __items = __run.skip(TABLES);
                while __at.resume(&mut __items, report)? {
                    '__item: for table in &mut __items {
                        __at.step(report);
                        report.rows
                            += match __at.ok(vacuum(db, table))? {
                                ::core::option::Option::Some(__v) => __v,
                                ::core::option::Option::None => continue '__item,
                            };
                    }
                }
                Ok(())
            },
        );
    __run.finish(report, __result)
}
