-- The cart and order writes as server-side functions: each is one statement from the client,
-- so one round trip instead of a transaction of four to ten (BEGIN, the statements, COMMIT),
-- with the same steps, locks and checks as before, in the same order:
--
-- * every statement filters on the tenant (tenancy is in the keys);
-- * a write locks the cart row first (`carts` upsert or `FOR UPDATE`), so one user's writes and
--   orders are serialised, and an order then locks the cart's products in id order, so two
--   orders cannot deadlock;
-- * the cart version only grows (the Redis cart cache relies on it);
-- * `stock >= 0` stays the last line of defence against overselling;
-- * idempotency keys are per (tenant, user).
--
-- Each function runs in the caller's implicit transaction, and in READ COMMITTED every statement
-- inside takes a fresh snapshot, so a statement after a lock sees everything committed before
-- the lock was granted: the cart a function returns is the cart at the version it returns.
-- An outcome other than 'ok' returns before anything is changed. A total that does not fit in a
-- bigint fails the statement with SQLSTATE 22003 (numeric_value_out_of_range), which rolls
-- everything back; the application reports it as a cart that cannot be priced.

-- The rows of one cart with the catalog data of its lines, and its total; one row (with NULL
-- line columns) for a cart without items. Shared by the cart functions below.
CREATE FUNCTION commerce_cart_rows(p_tenant uuid, p_user uuid)
RETURNS TABLE (
    version bigint,
    product_id uuid,
    sku text,
    name text,
    price_cents bigint,
    quantity integer,
    active boolean,
    total_cents bigint
)
LANGUAGE sql STABLE AS $$
    SELECT c.version, i.product_id, p.sku, p.name, p.price_cents, i.quantity, p.active,
           (sum(p.price_cents * i.quantity) OVER ())::bigint
    FROM carts c
    LEFT JOIN cart_items i ON i.tenant_id = c.tenant_id AND i.user_id = c.user_id
    LEFT JOIN products p ON p.tenant_id = i.tenant_id AND p.id = i.product_id
    WHERE c.tenant_id = p_tenant AND c.user_id = p_user
    ORDER BY i.product_id
$$;

-- Adds `p_quantity` units of a product (capped at `p_max` per line). Outcomes: 'ok' (the rows
-- of the cart after the change), 'product_not_found', 'product_inactive'.
CREATE FUNCTION commerce_add_item(
    p_tenant uuid, p_user uuid, p_product uuid, p_quantity integer, p_max integer
)
RETURNS TABLE (
    outcome text,
    version bigint,
    product_id uuid,
    sku text,
    name text,
    price_cents bigint,
    quantity integer,
    active boolean,
    total_cents bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_active boolean;
BEGIN
    SELECT p.active INTO v_active FROM products p WHERE p.tenant_id = p_tenant AND p.id = p_product;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'product_not_found', NULL::bigint, NULL::uuid, NULL::text, NULL::text,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::bigint;
        RETURN;
    END IF;
    IF NOT v_active THEN
        RETURN QUERY SELECT 'product_inactive', NULL::bigint, NULL::uuid, NULL::text, NULL::text,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::bigint;
        RETURN;
    END IF;
    INSERT INTO carts AS c (tenant_id, user_id) VALUES (p_tenant, p_user)
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET version = c.version + 1;
    INSERT INTO cart_items AS i (tenant_id, user_id, product_id, quantity)
    VALUES (p_tenant, p_user, p_product, p_quantity)
    ON CONFLICT (tenant_id, user_id, product_id)
    DO UPDATE SET quantity = LEAST(i.quantity + EXCLUDED.quantity, p_max);
    RETURN QUERY SELECT 'ok', r.* FROM commerce_cart_rows(p_tenant, p_user) r;
END
$$;

-- Removes a product from the cart. Outcomes: 'ok' (the rows after the change), 'not_found' (no
-- cart, or the product is not in it; nothing changes).
CREATE FUNCTION commerce_remove_item(p_tenant uuid, p_user uuid, p_product uuid)
RETURNS TABLE (
    outcome text,
    version bigint,
    product_id uuid,
    sku text,
    name text,
    price_cents bigint,
    quantity integer,
    active boolean,
    total_cents bigint
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- Lock the cart first, as every write does; then the item.
    PERFORM 1 FROM carts c WHERE c.tenant_id = p_tenant AND c.user_id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::uuid, NULL::text, NULL::text,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::bigint;
        RETURN;
    END IF;
    DELETE FROM cart_items i
    WHERE i.tenant_id = p_tenant AND i.user_id = p_user AND i.product_id = p_product;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found', NULL::bigint, NULL::uuid, NULL::text, NULL::text,
            NULL::bigint, NULL::integer, NULL::boolean, NULL::bigint;
        RETURN;
    END IF;
    UPDATE carts c SET version = c.version + 1 WHERE c.tenant_id = p_tenant AND c.user_id = p_user;
    RETURN QUERY SELECT 'ok', r.* FROM commerce_cart_rows(p_tenant, p_user) r;
END
$$;

-- Empties the cart. Returns its new version, or NULL when the user never had a cart (nothing to
-- change, nothing cached).
CREATE FUNCTION commerce_clear_cart(p_tenant uuid, p_user uuid)
RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_version bigint;
BEGIN
    UPDATE carts c SET version = c.version + 1
    WHERE c.tenant_id = p_tenant AND c.user_id = p_user
    RETURNING c.version INTO v_version;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    DELETE FROM cart_items i WHERE i.tenant_id = p_tenant AND i.user_id = p_user;
    RETURN v_version;
END
$$;

-- Turns the cart into an order with id `p_order`. Outcomes:
-- * 'ok': the new order; its rows (one per item) and the cart's new version;
-- * 'replayed': the order this user's idempotency key already names; its rows, nothing changed;
-- * 'empty_cart', 'product_inactive' (problem_ids: the first inactive product), 'out_of_stock'
--   (problem_ids: every product short of stock): nothing changed.
CREATE FUNCTION commerce_create_order(p_tenant uuid, p_user uuid, p_order uuid, p_key text)
RETURNS TABLE (
    outcome text,
    order_id uuid,
    status text,
    created_at timestamptz,
    total_cents bigint,
    cart_version bigint,
    product_id uuid,
    sku text,
    name text,
    unit_price_cents bigint,
    quantity integer,
    problem_ids uuid[]
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_cart boolean;
    v_replayed uuid;
    v_total bigint;
    v_created timestamptz;
    v_version bigint;
    -- The cart's lines, in product id order (the order they were locked in).
    v_ids uuid[] := '{}';
    v_quantities integer[] := '{}';
    v_skus text[] := '{}';
    v_names text[] := '{}';
    v_prices bigint[] := '{}';
    v_inactive uuid[] := '{}';
    v_short uuid[] := '{}';
    r record;
BEGIN
    -- Serialises this user's concurrent orders (and cart writes): a retry that raced its
    -- original waits here and then finds the original's order by its key.
    PERFORM 1 FROM carts c WHERE c.tenant_id = p_tenant AND c.user_id = p_user FOR UPDATE;
    v_cart := FOUND;
    IF p_key IS NOT NULL THEN
        SELECT o.id INTO v_replayed FROM orders o
        WHERE o.tenant_id = p_tenant AND o.user_id = p_user AND o.idempotency_key = p_key;
        IF FOUND THEN
            RETURN QUERY
                SELECT 'replayed', o.id, o.status, o.created_at, o.total_cents, NULL::bigint,
                       i.product_id, i.sku, i.name, i.unit_price_cents, i.quantity, NULL::uuid[]
                FROM orders o
                JOIN order_items i ON i.tenant_id = o.tenant_id AND i.order_id = o.id
                WHERE o.tenant_id = p_tenant AND o.id = v_replayed
                ORDER BY i.product_id;
            RETURN;
        END IF;
    END IF;
    IF NOT v_cart THEN
        RETURN QUERY SELECT 'empty_cart', NULL::uuid, NULL::text, NULL::timestamptz,
            NULL::bigint, NULL::bigint, NULL::uuid, NULL::text, NULL::text, NULL::bigint,
            NULL::integer, NULL::uuid[];
        RETURN;
    END IF;
    -- The cart's lines with their products, locked in id order (ORDER BY runs before the
    -- locking). `FOR NO KEY UPDATE` is the lock the stock UPDATE takes anyway; unlike
    -- `FOR UPDATE` it does not block the key-share locks of concurrent cart inserts referencing
    -- the product.
    FOR r IN
        SELECT i.product_id, i.quantity, p.sku, p.name, p.price_cents, p.stock, p.active
        FROM cart_items i
        JOIN products p ON p.tenant_id = i.tenant_id AND p.id = i.product_id
        WHERE i.tenant_id = p_tenant AND i.user_id = p_user
        ORDER BY p.id
        FOR NO KEY UPDATE OF p
    LOOP
        v_ids := v_ids || r.product_id;
        v_quantities := v_quantities || r.quantity;
        v_skus := v_skus || r.sku;
        v_names := v_names || r.name;
        v_prices := v_prices || r.price_cents;
        IF NOT r.active THEN
            v_inactive := v_inactive || r.product_id;
        END IF;
        IF r.stock < r.quantity THEN
            v_short := v_short || r.product_id;
        END IF;
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN QUERY SELECT 'empty_cart', NULL::uuid, NULL::text, NULL::timestamptz,
            NULL::bigint, NULL::bigint, NULL::uuid, NULL::text, NULL::text, NULL::bigint,
            NULL::integer, NULL::uuid[];
        RETURN;
    END IF;
    IF cardinality(v_inactive) > 0 THEN
        RETURN QUERY SELECT 'product_inactive', NULL::uuid, NULL::text, NULL::timestamptz,
            NULL::bigint, NULL::bigint, NULL::uuid, NULL::text, NULL::text, NULL::bigint,
            NULL::integer, v_inactive[1:1];
        RETURN;
    END IF;
    IF cardinality(v_short) > 0 THEN
        RETURN QUERY SELECT 'out_of_stock', NULL::uuid, NULL::text, NULL::timestamptz,
            NULL::bigint, NULL::bigint, NULL::uuid, NULL::text, NULL::text, NULL::bigint,
            NULL::integer, v_short;
        RETURN;
    END IF;
    -- bigint arithmetic: fails with 22003 when the total does not fit, before anything is
    -- written.
    SELECT sum(l.price * l.quantity) INTO v_total
    FROM unnest(v_prices, v_quantities) AS l(price, quantity);
    UPDATE products p SET stock = p.stock - l.quantity
    FROM unnest(v_ids, v_quantities) AS l(id, quantity)
    WHERE p.tenant_id = p_tenant AND p.id = l.id;
    INSERT INTO orders AS o (tenant_id, id, user_id, status, total_cents, idempotency_key)
    VALUES (p_tenant, p_order, p_user, 'placed', v_total, p_key)
    RETURNING o.created_at INTO v_created;
    INSERT INTO order_items (tenant_id, order_id, product_id, sku, name, unit_price_cents, quantity)
        SELECT p_tenant, p_order, l.*
        FROM unnest(v_ids, v_skus, v_names, v_prices, v_quantities) AS l;
    DELETE FROM cart_items i WHERE i.tenant_id = p_tenant AND i.user_id = p_user;
    UPDATE carts c SET version = c.version + 1
    WHERE c.tenant_id = p_tenant AND c.user_id = p_user
    RETURNING c.version INTO v_version;
    RETURN QUERY
        SELECT 'ok', p_order, 'placed'::text, v_created, v_total, v_version, l.id, l.sku,
               l.name, l.price, l.quantity, NULL::uuid[]
        FROM unnest(v_ids, v_skus, v_names, v_prices, v_quantities)
            WITH ORDINALITY AS l(id, sku, name, price, quantity, n)
        ORDER BY l.n;
END
$$;
