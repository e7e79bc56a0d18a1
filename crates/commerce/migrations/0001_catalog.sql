-- The product catalog. Every tenant has its own catalog; all keys start with the tenant so that a
-- row of one tenant can never reference a row of another (see the foreign keys of the cart and
-- order tables).
CREATE TABLE products (
    tenant_id   uuid    NOT NULL,
    id          uuid    NOT NULL,
    sku         text    NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    name        text    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_cents bigint  NOT NULL CHECK (price_cents >= 0),
    -- The last line of defence for "stock is never negative": an order that would drive it below
    -- zero fails even if the application check were wrong.
    stock       integer NOT NULL CHECK (stock >= 0),
    active      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, sku)
);
