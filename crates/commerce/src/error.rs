//! The library's error type. Every variant says what went wrong in terms of the domain; database
//! failures are classified once, here, so the gRPC layer can map them to stable codes.

use crate::ids::ProductId;

/// What can go wrong in a cart or order operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An argument is out of range or malformed (quantity, id, page size, page token, key).
    #[error("{0}")]
    InvalidArgument(String),

    /// The named thing does not exist in the caller's tenant (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),

    /// The product exists but is deactivated, so it cannot be added to a cart or ordered.
    #[error("product {0} is not available")]
    ProductInactive(ProductId),

    /// At least one product of the cart has less stock than the cart asks for.
    #[error("out of stock: {}", list(.0))]
    OutOfStock(Vec<ProductId>),

    /// An order was requested for an empty cart.
    #[error("the cart is empty")]
    EmptyCart,

    /// The cart's total (the sum of price × quantity of its lines) does not fit in 64 bits of
    /// cents, so it cannot be priced or ordered until lines are removed.
    #[error(
        "the cart cannot be priced: its total exceeds {} cents; remove items",
        i64::MAX
    )]
    TotalOverflow,

    /// The database cannot be reached (pool timeout, closed pool, broken connection, server
    /// shutting down). The operation may be retried later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),

    /// The database was found unreachable recently and has not answered since: the call was
    /// refused without trying (see [`crate::db::Breaker`]). It may be retried later.
    #[error("database unavailable")]
    DatabaseDown,

    /// A transaction lost a serialization or deadlock conflict; retrying it may succeed.
    #[error("transaction conflict")]
    Conflict(#[source] sqlx::Error),

    /// Any other database error: a bug or a schema mismatch, never the caller's fault.
    #[error("database error")]
    Database(#[source] sqlx::Error),

    /// An invariant does not hold (corrupt data); never the caller's fault.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The same error for another caller: the same variant and message, a database error's
    /// source kept as its text (a `sqlx::Error` cannot be cloned). For the reads that share one
    /// load of a cart ([`crate::cache::CartCache::load_once`]).
    pub(crate) fn replica(&self) -> Error {
        let text = |error: &sqlx::Error| sqlx::Error::Protocol(error.to_string());
        match self {
            Error::InvalidArgument(message) => Error::InvalidArgument(message.clone()),
            Error::NotFound(what) => Error::NotFound(what),
            Error::ProductInactive(product) => Error::ProductInactive(*product),
            Error::OutOfStock(products) => Error::OutOfStock(products.clone()),
            Error::EmptyCart => Error::EmptyCart,
            Error::TotalOverflow => Error::TotalOverflow,
            Error::Unavailable(error) => Error::Unavailable(text(error)),
            Error::DatabaseDown => Error::DatabaseDown,
            Error::Conflict(error) => Error::Conflict(text(error)),
            Error::Database(error) => Error::Database(text(error)),
            Error::Internal(message) => Error::Internal(message.clone()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => Error::Unavailable(error),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // Class 08 is "connection exception"; 57P01..57P03 are admin shutdown, crash
                // shutdown and "cannot connect now"; 53300 is "too many connections".
                Some(code) if code.starts_with("08") => Error::Unavailable(error),
                Some("57P01" | "57P02" | "57P03" | "53300") => Error::Unavailable(error),
                // Serialization failure and deadlock detected.
                Some("40001" | "40P01") => Error::Conflict(error),
                _ => Error::Database(error),
            },
            _ => Error::Database(error),
        }
    }
}

fn list(ids: &[ProductId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_connection_failures_as_unavailable() {
        assert!(matches!(
            Error::from(sqlx::Error::PoolTimedOut),
            Error::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            Error::from(sqlx::Error::Io(io)),
            Error::Unavailable(_)
        ));
        assert!(matches!(
            Error::from(sqlx::Error::RowNotFound),
            Error::Database(_)
        ));
    }

    #[test]
    fn out_of_stock_names_the_products() {
        let id = ProductId(uuid::Uuid::nil());
        let message = Error::OutOfStock(vec![id]).to_string();
        assert_eq!(message, format!("out of stock: {id}"));
    }
}
