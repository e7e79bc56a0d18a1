//! Typed ids. Each is a UUID on the wire and in the database; the newtypes keep a product id from
//! being passed where an order id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (version 4) id.
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            /// What the id names, for error messages.
            pub const WHAT: &'static str = $what;
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Parses a UUID in any of the usual forms; anything else is an invalid argument.
            fn from_str(text: &str) -> Result<Self, Error> {
                Uuid::parse_str(text).map(Self).map_err(|_| {
                    Error::InvalidArgument(format!(
                        concat!("malformed ", $what, " {:?}: expected a UUID"),
                        truncate(text)
                    ))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: one shop with its own catalog, carts and orders.
    TenantId,
    "tenant id"
);
uuid_id!(
    /// A user within a tenant.
    UserId,
    "user id"
);
uuid_id!(
    /// A product of a tenant's catalog.
    ProductId,
    "product id"
);
uuid_id!(
    /// An order of a tenant.
    OrderId,
    "order id"
);

/// Caps untrusted input echoed in error messages, so a huge argument does not make a huge reply.
pub(crate) fn truncate(text: &str) -> &str {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uuids_and_rejects_everything_else() {
        let id: ProductId = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
        assert_eq!(id.to_string(), "67e55044-10b1-426f-9247-bb680e5fe0c8");
        let upper: ProductId = "67E55044-10B1-426F-9247-BB680E5FE0C8".parse().unwrap();
        assert_eq!(upper, id);

        for bad in [
            "",
            "42",
            "not-a-uuid",
            "67e55044-10b1-426f-9247-bb680e5fe0c",
        ] {
            let err = bad.parse::<OrderId>().unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err}");
            assert!(err.to_string().contains("order id"), "{err}");
        }
    }

    #[test]
    fn truncates_long_input_on_a_char_boundary() {
        let long = "é".repeat(100);
        assert_eq!(truncate(&long).chars().count(), 64);
        assert_eq!(truncate("short"), "short");
    }
}
