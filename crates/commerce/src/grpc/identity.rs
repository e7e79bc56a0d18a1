//! The caller's identity from request metadata.
//!
//! The API gateway authenticates the end user and sets, on every call it forwards:
//!
//! | key           | value                                               | required |
//! |---------------|-----------------------------------------------------|----------|
//! | `x-tenant-id` | the tenant, a UUID                                  | yes      |
//! | `x-user-id`   | the user within the tenant, a UUID                  | yes      |
//! | `x-roles`     | comma-separated `customer`, `tenant_admin`, `support` | no (`customer`) |
//!
//! The service trusts these values, so it must only be reachable through the gateway. A call
//! with a missing, repeated or malformed entry is `UNAUTHENTICATED`: it did not come through a
//! correctly configured gateway, whatever else is wrong with it.

use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::identity::{Caller, Roles};
use crate::ids::{TenantId, UserId};

pub const TENANT_ID: &str = "x-tenant-id";
pub const USER_ID: &str = "x-user-id";
pub const ROLES: &str = "x-roles";

/// Reads the caller from the metadata.
pub fn caller(metadata: &MetadataMap) -> Result<Caller, Status> {
    let tenant: TenantId = single(metadata, TENANT_ID)?
        .ok_or_else(|| missing(TENANT_ID))?
        .parse()
        .map_err(|_| Status::unauthenticated(format!("malformed {TENANT_ID}: expected a UUID")))?;
    let user: UserId = single(metadata, USER_ID)?
        .ok_or_else(|| missing(USER_ID))?
        .parse()
        .map_err(|_| Status::unauthenticated(format!("malformed {USER_ID}: expected a UUID")))?;
    let roles = match single(metadata, ROLES)? {
        None => Roles::DEFAULT,
        Some(text) => Roles::parse(text)
            .map_err(|error| Status::unauthenticated(format!("malformed {ROLES}: {error}")))?,
    };
    Ok(Caller {
        tenant,
        user,
        roles,
    })
}

/// Sets the identity metadata on an outgoing request, as the gateway does: for clients in tests
/// and benchmarks.
pub fn attach<T>(request: &mut Request<T>, caller: &Caller) {
    let metadata = request.metadata_mut();
    // Ids and role names are ASCII, so these conversions cannot fail; `if let` keeps it total.
    if let Ok(value) = caller.tenant.to_string().parse() {
        metadata.insert(TENANT_ID, value);
    }
    if let Ok(value) = caller.user.to_string().parse() {
        metadata.insert(USER_ID, value);
    }
    let roles: Vec<&str> = caller.roles.iter().map(|role| role.as_str()).collect();
    if let Ok(value) = roles.join(",").parse() {
        metadata.insert(ROLES, value);
    }
}

/// Wraps `message` in a request that carries `caller`'s identity.
pub fn request<T>(caller: &Caller, message: T) -> Request<T> {
    let mut request = Request::new(message);
    attach(&mut request, caller);
    request
}

fn single<'a>(metadata: &'a MetadataMap, key: &'static str) -> Result<Option<&'a str>, Status> {
    let mut values = metadata.get_all(key).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Status::unauthenticated(format!("{key} is repeated")));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| Status::unauthenticated(format!("malformed {key}: not ASCII")))
}

fn missing(key: &str) -> Status {
    Status::unauthenticated(format!("missing {key} (set by the API gateway)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    #[test]
    fn round_trips_through_metadata() {
        let caller_in = Caller {
            tenant: TenantId::new_random(),
            user: UserId::new_random(),
            roles: Roles::of(&[Role::Customer, Role::Support]),
        };
        let request = request(&caller_in, ());
        assert_eq!(caller(request.metadata()).unwrap(), caller_in);
    }

    #[test]
    fn rejects_missing_repeated_and_malformed_identities() {
        let tenant = TenantId::new_random().to_string();
        let user = UserId::new_random().to_string();
        let cases: [&[(&str, &str)]; 6] = [
            &[],
            &[(TENANT_ID, &tenant)],
            &[(USER_ID, &user)],
            &[(TENANT_ID, "acme"), (USER_ID, &user)],
            &[(TENANT_ID, &tenant), (USER_ID, &user), (ROLES, "admin")],
            &[(TENANT_ID, &tenant), (TENANT_ID, &tenant), (USER_ID, &user)],
        ];
        for entries in cases {
            let mut metadata = MetadataMap::new();
            for (key, value) in entries {
                metadata.append(*key, value.parse().unwrap());
            }
            let status = caller(&metadata).unwrap_err();
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{entries:?}");
            assert!(!status.message().is_empty());
        }
        let mut metadata = MetadataMap::new();
        metadata.insert(TENANT_ID, tenant.parse().unwrap());
        metadata.insert(USER_ID, user.parse().unwrap());
        assert_eq!(caller(&metadata).unwrap().roles, Roles::DEFAULT);
    }
}
