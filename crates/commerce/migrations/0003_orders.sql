-- Orders. `idempotency_key` is optional; NULLs never conflict, so only orders created with a key
-- are deduplicated, per tenant. The status set grows with the operations that change it.
CREATE TABLE orders (
    tenant_id       uuid        NOT NULL,
    id              uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('placed')),
    total_cents     bigint      NOT NULL CHECK (total_cents >= 0),
    idempotency_key text        CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, idempotency_key)
);

-- Keyset pagination, newest first: a user's own orders, and (for tenant admins) all orders of the
-- tenant. Both match `ORDER BY created_at DESC, id DESC` with `(created_at, id) < (cursor)`.
CREATE INDEX orders_by_user_newest ON orders (tenant_id, user_id, created_at DESC, id DESC);
CREATE INDEX orders_by_tenant_newest ON orders (tenant_id, created_at DESC, id DESC);

-- The items of an order with the product's SKU, name and price at the moment of the order. There
-- is deliberately no foreign key to products: the snapshot columns make an order self-contained,
-- and inserting order items need not lock product keys a second time.
CREATE TABLE order_items (
    tenant_id        uuid    NOT NULL,
    order_id         uuid    NOT NULL,
    product_id       uuid    NOT NULL,
    sku              text    NOT NULL,
    name             text    NOT NULL,
    unit_price_cents bigint  NOT NULL CHECK (unit_price_cents >= 0),
    quantity         integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    PRIMARY KEY (tenant_id, order_id, product_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders ON DELETE CASCADE
);
