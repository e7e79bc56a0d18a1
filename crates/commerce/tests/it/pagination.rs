//! Keyset pagination of order listings.

use std::collections::HashSet;

use chrono::{DateTime, Duration};
use commerce::cart::Quantity;
use commerce::fixtures::{self, NewOrder};
use commerce::grpc::identity::request;
use commerce::grpc::proto::{ListOrdersRequest, ListScope, OrderSummary};
use commerce::identity::{Caller, Role};
use commerce::ids::{OrderId, TenantId};

use crate::support::{Api, Env, customer, user};

/// Every page of a listing, in order.
async fn pages(
    api: &mut Api,
    caller: &Caller,
    scope: ListScope,
    page_size: u32,
) -> anyhow::Result<Vec<Vec<OrderSummary>>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let list = ListOrdersRequest {
            page_size,
            page_token: token.clone(),
            tenant_id: String::new(),
            scope: scope as i32,
        };
        let page = api
            .orders
            .list_orders(request(caller, list))
            .await?
            .into_inner();
        pages.push(page.orders);
        if page.next_page_token.is_empty() {
            return Ok(pages);
        }
        anyhow::ensure!(pages.len() < 100, "pagination does not end");
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_fifty_orders_in_three_pages() -> anyhow::Result<()> {
    let env = Env::new().await?;
    let mut api = env.serve().await?;
    let tenant = TenantId::new_random();
    let catalog = fixtures::catalog(tenant, 1, 5, 100);
    let me = customer(tenant);
    let other = customer(tenant);
    // 250 orders of mine in groups of ten that share a creation time, so the id must break
    // ties, plus 30 of another user's interleaved with them.
    let base = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let mut orders: Vec<NewOrder> = (0..250)
        .map(|i| NewOrder {
            id: OrderId::new_random(),
            user: me.user,
            created_at: base + Duration::seconds(i / 10),
            items: vec![(i as usize % 5, Quantity::new(1).unwrap())],
        })
        .collect();
    orders.extend((0..30).map(|i| NewOrder {
        id: OrderId::new_random(),
        user: other.user,
        created_at: base + Duration::seconds(i),
        items: vec![(0, Quantity::new(2).unwrap())],
    }));
    let mut tx = env.pool.begin().await?;
    fixtures::insert_products(&mut tx, tenant, &catalog).await?;
    fixtures::insert_orders(&mut tx, tenant, &catalog, &orders).await?;
    tx.commit().await?;

    let mine_pages = pages(&mut api, &me, ListScope::Own, 100).await?;
    let sizes: Vec<usize> = mine_pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    let listed: Vec<&OrderSummary> = mine_pages.iter().flatten().collect();
    let unique: HashSet<&str> = listed.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(unique.len(), 250, "no duplicates");
    let mine: HashSet<String> = orders[..250].iter().map(|o| o.id.to_string()).collect();
    assert_eq!(
        unique,
        mine.iter().map(String::as_str).collect(),
        "no gaps, no strangers"
    );
    for pair in listed.windows(2) {
        let (newer, older) = (pair[0], pair[1]);
        let newer_key = (
            newer.created_at_unix_micros,
            uuid::Uuid::parse_str(&newer.id)?,
        );
        let older_key = (
            older.created_at_unix_micros,
            uuid::Uuid::parse_str(&older.id)?,
        );
        assert!(
            newer_key > older_key,
            "newest first: {newer:?} before {older:?}"
        );
    }

    // A tenant admin pages through everyone's orders the same way.
    let admin = user(tenant, &[Role::TenantAdmin]);
    let all = pages_flat(&mut api, &admin, ListScope::Tenant, 64).await?;
    assert_eq!(all.len(), 280);
    assert_eq!(all.iter().map(|o| &o.id).collect::<HashSet<_>>().len(), 280);

    // An exact multiple of the page size ends without an empty page.
    let exact = pages(&mut api, &other, ListScope::Own, 10).await?;
    assert_eq!(exact.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 10]);
    Ok(())
}

async fn pages_flat(
    api: &mut Api,
    caller: &Caller,
    scope: ListScope,
    page_size: u32,
) -> anyhow::Result<Vec<OrderSummary>> {
    Ok(pages(api, caller, scope, page_size)
        .await?
        .into_iter()
        .flatten()
        .collect())
}
