//! The bench environment end to end: services configured as claimed, and the uncached refill
//! never letting a stale cart be served.

use anyhow::Context as _;
use commerce::cart::Quantity;
use commerce::fixtures::{self, FixtureSpec};
use commerce::grpc::identity::request;
use commerce::grpc::proto::GetCartRequest;
use commerce::grpc::proto::cart_service_client::CartServiceClient;
use commerce::identity::{Caller, Role, Roles};
use commerce::ids::TenantId;
use commerce_bench::{BenchEnv, cart_of, refill_uncached};

#[test]
fn the_environment_serves_and_the_uncached_refill_is_never_stale() -> anyhow::Result<()> {
    let runtime = bench_harness::runtime()?;
    let env = BenchEnv::start(&runtime)?;
    runtime.block_on(async {
        let tenant = TenantId::new_random();
        let spec = FixtureSpec {
            seed: 1,
            products: 10,
            stock: 100,
            users: 1,
            cart_items: 0,
            orders_per_user: 0,
        };
        let data = fixtures::load(&env.pool, env.cache(), tenant, &spec).await?;
        let user = data.users[0];
        let products: Vec<_> = data.products.iter().map(|p| p.id).collect();
        let base = cart_of(user, &products[..3]);
        fixtures::refill_carts(&env.pool, env.cache(), tenant, std::slice::from_ref(&base)).await?;
        let carts = &env.commerce.carts;
        let before = env.counters();

        // Cached, then changed by a write (which leaves a tombstone), then refilled without
        // touching Redis: the next read must see the refilled cart, not the cached one.
        assert_eq!(carts.get_cart(tenant, user).await?.items.len(), 3);
        assert_eq!(carts.get_cart(tenant, user).await?.items.len(), 3);
        let added = carts
            .add_item(tenant, user, products[5], Quantity::clamped(1))
            .await?;
        assert_eq!(added.items.len(), 4);
        refill_uncached(&env.pool, tenant, std::slice::from_ref(&base)).await?;
        let refilled = carts.get_cart(tenant, user).await?;
        assert_eq!(refilled.items.len(), 3);
        assert!(refilled.version > added.version);
        assert_eq!(carts.get_cart(tenant, user).await?, refilled);

        // Through gRPC with identity metadata, authorized by the policy engine.
        let caller = Caller {
            tenant,
            user,
            roles: Roles::of(&[Role::Customer]),
        };
        let mut client = CartServiceClient::new(env.channel.clone());
        for _ in 0..3 {
            let cart = client
                .get_cart(request(&caller, GetCartRequest::default()))
                .await
                .context("GetCart")?
                .into_inner();
            assert_eq!(cart.items.len(), 3);
            assert_eq!(cart.version, refilled.version);
        }

        let delta = env.counters().since(&before);
        delta.healthy()?;
        // Misses: the first read, and the read after the refill; the other four reads hit.
        assert_eq!((delta.cart.hits, delta.cart.misses), (5, 2));
        // One evaluation for the three identical calls: the decision cache answers the rest.
        assert_eq!(delta.evaluations, 1);
        assert_eq!(delta.decisions.l1_hits, 2);
        anyhow::Ok(())
    })?;
    runtime.block_on(env.shutdown())
}
