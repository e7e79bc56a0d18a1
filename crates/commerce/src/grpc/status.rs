//! The mapping from library errors to gRPC status codes. Callers see a stable code and a message
//! that is safe to show; database and internal details go to the log only.

use tonic::Status;

use crate::Error;
use crate::authz::Denied;

/// Maps an error to its status, logging what the caller is not told.
pub fn to_status(error: Error) -> Status {
    match error {
        Error::InvalidArgument(message) => Status::invalid_argument(message),
        Error::NotFound(_) => Status::not_found(error.to_string()),
        Error::ProductInactive(_)
        | Error::OutOfStock(_)
        | Error::EmptyCart
        | Error::TotalOverflow => Status::failed_precondition(error.to_string()),
        Error::Unavailable(_) => {
            tracing::warn!(error = %chain(&error), "database unavailable");
            Status::unavailable("database unavailable, retry later")
        }
        Error::DatabaseDown => Status::unavailable("database unavailable, retry later"),
        Error::Conflict(_) => {
            tracing::warn!(error = %chain(&error), "transaction conflict");
            Status::aborted("transaction conflict, retry")
        }
        Error::Database(_) | Error::Internal(_) => {
            tracing::error!(error = %chain(&error), "internal error");
            Status::internal("internal error")
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        to_status(error)
    }
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Self {
        Status::permission_denied(denied.reason)
    }
}

/// The error and its sources, `outer: inner: innermost`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn maps_errors_to_codes_and_hides_internals() {
        let cases = [
            (Error::InvalidArgument("bad".into()), Code::InvalidArgument),
            (Error::NotFound("order"), Code::NotFound),
            (Error::EmptyCart, Code::FailedPrecondition),
            (Error::TotalOverflow, Code::FailedPrecondition),
            (Error::DatabaseDown, Code::Unavailable),
            (Error::OutOfStock(vec![]), Code::FailedPrecondition),
            (
                Error::Unavailable(sqlx::Error::PoolTimedOut),
                Code::Unavailable,
            ),
            (Error::Database(sqlx::Error::RowNotFound), Code::Internal),
            (Error::Internal("secret detail".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let status = to_status(error);
            assert_eq!(status.code(), code);
            assert!(!status.message().is_empty());
            assert!(!status.message().contains("secret"), "{}", status.message());
        }
        assert_eq!(
            to_status(Error::NotFound("order")).message(),
            "order not found"
        );
    }
}
