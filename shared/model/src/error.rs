//! The errors of the data model, and the one place where DynamoDB's SDK
//! errors become them.
//!
//! A store never answers with an SDK error: a transport failure or a 5xx is
//! `Unavailable`, throttling that outlived the SDK's retries is `Throttled`,
//! a condition that failed is named (`Condition`), and anything else is
//! `Internal`, with its cause kept for the log. A cancelled transaction is
//! decoded from its cancellation reasons, by position, never from the text
//! of its message. What each error means to a client is decided above this
//! crate, by the platform's one error table.

use std::error::Error as StdError;

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata, operation::transact_write_items::TransactWriteItemsError,
};
use aws_smithy_runtime_api::client::{orchestrator::HttpResponse, result::SdkError};

/// A boxed cause kept for the log.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A condition of a write that did not hold, named for what it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The email address is claimed by another account.
    EmailTaken,
    /// The user is gone.
    UserGone,
    /// The refresh token presented is no longer the session's.
    RefreshSuperseded,
    /// The session ended (revoked, or cut by a reset, suspension or
    /// deletion) while the write that needed it was on its way.
    SessionEnded,
    /// A one-time token lost to a newer use (a later password reset), or
    /// its user is gone.
    TokenSuperseded,
    /// The post is gone.
    PostGone,
    /// The post's version is not the one the writer read.
    PostChanged,
    /// The comment is gone.
    CommentGone,
    /// The notification is gone.
    NotificationGone,
    /// The upload is gone: missing, another owner's, or expired.
    UploadGone,
    /// The user already holds `max` pending uploads, every slot there is.
    TooManyPendingUploads { max: u64 },
    /// The idempotency key was recorded by a concurrent request first.
    Replayed,
    /// An item that must be new already exists (an id collision).
    AlreadyExists,
    /// The change would leave no active admin.
    LastAdmin,
}

/// Every failure of a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service could not be reached, or answered with a server error.
    #[error("{service} is unavailable")]
    Unavailable {
        service: &'static str,
        #[source]
        source: BoxError,
    },
    /// The service kept throttling, or a transaction kept conflicting,
    /// after every retry.
    #[error("{service} is throttling")]
    Throttled {
        service: &'static str,
        #[source]
        source: BoxError,
    },
    /// A condition of the write did not hold.
    #[error("condition failed: {0:?}")]
    Condition(Condition),
    /// A bug or a malformed item. The cause is logged, never sent.
    #[error("internal error: {context}")]
    Internal {
        context: &'static str,
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    pub fn internal(context: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Internal {
            context,
            source: source.into(),
        }
    }

    pub fn unavailable(service: &'static str, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            service,
            source: source.into(),
        }
    }

    /// Whether this is the named condition.
    pub fn is(&self, condition: Condition) -> bool {
        matches!(self, StoreError::Condition(c) if *c == condition)
    }

    /// Renames a failed condition for what the caller knows it protected.
    pub fn on_condition(self, condition: Condition) -> Self {
        match self {
            StoreError::Condition(_) => StoreError::Condition(condition),
            other => other,
        }
    }
}

/// Error codes that mean "too much, try again later".
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "TransactionInProgressException",
];

/// Error codes that mean the service itself failed.
const SERVER_CODES: &[&str] = &[
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Translates any SDK error of `service` into a store error. A failed
/// condition is `AlreadyExists` until the caller names it
/// (`StoreError::on_condition`): only the caller knows what it guarded.
pub fn translate<E>(service: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::unavailable(service, err)
        }
        SdkError::ServiceError(inner) => {
            let code = inner.err().code().unwrap_or_default();
            let status = inner.raw().status().as_u16();
            if code == "ConditionalCheckFailedException" {
                StoreError::Condition(Condition::AlreadyExists)
            } else if THROTTLING_CODES.contains(&code) {
                StoreError::Throttled {
                    service,
                    source: err.into(),
                }
            } else if SERVER_CODES.contains(&code) || status >= 500 {
                StoreError::unavailable(service, err)
            } else {
                StoreError::internal(context(service), err)
            }
        }
        _ => StoreError::internal(context(service), err),
    }
}

fn context(service: &'static str) -> &'static str {
    match service {
        "dynamodb" => "calling dynamodb",
        "s3" => "calling s3",
        "ses" => "calling ses",
        _ => "calling an AWS service",
    }
}

/// Translates a DynamoDB SDK error.
pub fn dynamo<E>(err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    translate("dynamodb", err)
}

/// Why a write transaction did not commit, read from its cancellation
/// reasons: one per item, in the order the items were given.
#[derive(Debug)]
pub enum TransactionFailure {
    /// The conditions of the items at these positions (ascending, never
    /// empty) failed.
    Conditions(Vec<usize>),
    /// Another transaction held an item, or the table throttled, every
    /// retry long.
    Busy(BoxError),
    /// Anything else, already translated.
    Store(StoreError),
}

impl TransactionFailure {
    /// Names the failed condition from the positions of the items whose
    /// conditions failed; `name` answers `None` when those positions make
    /// no sense (an unconditional item among them), which is then a bug.
    pub fn named(self, name: impl FnOnce(&[usize]) -> Option<Condition>) -> StoreError {
        match self {
            TransactionFailure::Conditions(failed) => match name(&failed) {
                Some(condition) => StoreError::Condition(condition),
                None => StoreError::internal(
                    "decoding a cancelled transaction",
                    format!("items {failed:?} failed conditions they do not have"),
                ),
            },
            TransactionFailure::Busy(source) => StoreError::Throttled {
                service: "dynamodb",
                source,
            },
            TransactionFailure::Store(err) => err,
        }
    }
}

/// The cancellation reasons of a cancelled transaction, by position: failed
/// conditions win over a conflict, since retrying cannot make a failed
/// condition hold.
pub fn decode_cancellation(
    err: SdkError<TransactWriteItemsError, HttpResponse>,
) -> TransactionFailure {
    let reasons: Vec<Option<String>> = match err.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().map(str::to_owned))
            .collect(),
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
            return TransactionFailure::Busy(err.into());
        }
        _ => return TransactionFailure::Store(dynamo(err)),
    };
    let failed: Vec<usize> = reasons
        .iter()
        .enumerate()
        .filter(|(_, code)| code.as_deref() == Some("ConditionalCheckFailed"))
        .map(|(index, _)| index)
        .collect();
    if !failed.is_empty() {
        return TransactionFailure::Conditions(failed);
    }
    let busy = reasons.iter().any(|code| {
        matches!(
            code.as_deref(),
            Some("TransactionConflict" | "ThrottlingError" | "ProvisionedThroughputExceeded")
        )
    });
    if busy {
        TransactionFailure::Busy(err.into())
    } else {
        TransactionFailure::Store(StoreError::internal(
            "cancelled transaction",
            format!("{err}: reasons {reasons:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::{
        error::ErrorMetadata,
        operation::put_item::PutItemError,
        types::{CancellationReason, error::TransactionCanceledException},
    };
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn raw(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn service_error(code: &str, status: u16) -> SdkError<PutItemError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message("m").build();
        SdkError::service_error(PutItemError::generic(meta), raw(status))
    }

    fn cancelled(codes: &[Option<&str>]) -> SdkError<TransactWriteItemsError, HttpResponse> {
        let reasons = codes
            .iter()
            .map(|code| {
                CancellationReason::builder()
                    .set_code(code.map(str::to_owned))
                    .build()
            })
            .collect();
        let meta = ErrorMetadata::builder()
            .code("TransactionCanceledException")
            // The text names a reason that is not the decoded one, so a
            // decoder reading the message instead of the reasons fails.
            .message("Transaction cancelled [TransactionConflict]")
            .build();
        let err = TransactionCanceledException::builder()
            .set_cancellation_reasons(Some(reasons))
            .meta(meta)
            .build();
        SdkError::service_error(
            TransactWriteItemsError::TransactionCanceledException(err),
            raw(400),
        )
    }

    #[test]
    fn a_failed_condition_is_named_by_its_position() {
        let failure = decode_cancellation(cancelled(&[
            Some("None"),
            Some("TransactionConflict"),
            Some("ConditionalCheckFailed"),
        ]));
        assert!(
            matches!(&failure, TransactionFailure::Conditions(failed) if failed == &[2]),
            "{failure:?}"
        );
        let err = failure.named(|failed| (failed == [2]).then_some(Condition::Replayed));
        assert!(err.is(Condition::Replayed), "{err:?}");
        // Every failed position is kept, for the caller to choose from.
        let failure = decode_cancellation(cancelled(&[
            Some("None"),
            Some("ConditionalCheckFailed"),
            Some("ConditionalCheckFailed"),
        ]));
        assert!(
            matches!(&failure, TransactionFailure::Conditions(failed) if failed == &[1, 2]),
            "{failure:?}"
        );
    }

    #[test]
    fn a_condition_on_an_unconditional_item_is_a_bug() {
        let err = decode_cancellation(cancelled(&[Some("ConditionalCheckFailed")])).named(|_| None);
        assert!(matches!(err, StoreError::Internal { .. }), "{err:?}");
    }

    #[test]
    fn conflicts_and_throttling_are_busy() {
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            let failure = decode_cancellation(cancelled(&[Some("None"), Some(code)]));
            assert!(
                matches!(failure, TransactionFailure::Busy(_)),
                "{code}: {failure:?}"
            );
            assert!(matches!(
                failure.named(|_| None),
                StoreError::Throttled { .. }
            ));
        }
    }

    #[test]
    fn other_reasons_are_internal() {
        let failure = decode_cancellation(cancelled(&[Some("ValidationError"), Some("None")]));
        assert!(
            matches!(
                failure,
                TransactionFailure::Store(StoreError::Internal { .. })
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn sdk_errors_translate_by_kind() {
        assert!(
            dynamo(service_error("ConditionalCheckFailedException", 400))
                .is(Condition::AlreadyExists)
        );
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(matches!(
                dynamo(service_error(code, 400)),
                StoreError::Throttled { .. }
            ));
        }
        for (code, status) in [("InternalServerError", 500), ("Whatever", 503)] {
            assert!(matches!(
                dynamo(service_error(code, status)),
                StoreError::Unavailable { .. }
            ));
        }
        assert!(matches!(
            dynamo(service_error("ValidationException", 400)),
            StoreError::Internal { .. }
        ));
        let timeout: SdkError<PutItemError, HttpResponse> =
            SdkError::timeout_error(std::io::Error::other("timed out"));
        assert!(matches!(dynamo(timeout), StoreError::Unavailable { .. }));
    }

    #[test]
    fn an_opaque_failure_names_the_service_it_called() {
        let context = |service| match translate(service, service_error("ValidationException", 400))
        {
            StoreError::Internal { context, .. } => context,
            other => panic!("{other:?}"),
        };
        assert_eq!(context("dynamodb"), "calling dynamodb");
        assert_eq!(context("s3"), "calling s3");
        assert_eq!(context("ses"), "calling ses");
        assert_eq!(context("apigateway"), "calling an AWS service");
    }

    #[test]
    fn a_transaction_still_in_progress_is_busy() {
        use aws_sdk_dynamodb::types::error::TransactionInProgressException;
        let err = TransactionInProgressException::builder()
            .meta(
                ErrorMetadata::builder()
                    .code("TransactionInProgressException")
                    .build(),
            )
            .build();
        let err = SdkError::service_error(
            TransactWriteItemsError::TransactionInProgressException(err),
            raw(400),
        );
        assert!(matches!(
            decode_cancellation(err),
            TransactionFailure::Busy(_)
        ));
    }

    #[test]
    fn is_tells_one_condition_from_another() {
        let err = StoreError::Condition(Condition::PostGone);
        assert!(err.is(Condition::PostGone));
        assert!(!err.is(Condition::CommentGone));
        assert!(!StoreError::internal("x", "y").is(Condition::PostGone));
    }

    #[test]
    fn renaming_keeps_other_errors() {
        let err = StoreError::Condition(Condition::AlreadyExists).on_condition(Condition::PostGone);
        assert!(err.is(Condition::PostGone));
        let err = StoreError::internal("x", "y").on_condition(Condition::PostGone);
        assert!(matches!(err, StoreError::Internal { .. }));
    }
}
