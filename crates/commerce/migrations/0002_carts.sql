-- One cart per (tenant, user). The row is created by the first write and never deleted (clearing a
-- cart deletes its items), so `version` only ever grows; the Redis cart cache relies on that to
-- tell a stale cached cart from a current one.
CREATE TABLE carts (
    tenant_id uuid   NOT NULL,
    user_id   uuid   NOT NULL,
    version   bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, user_id)
);

-- The primary key serves "the items of a cart" (its prefix) and "this product in this cart".
-- There is no index on (tenant_id, product_id): the application deactivates products instead of
-- deleting them, so the foreign key is never checked from the products side.
CREATE TABLE cart_items (
    tenant_id  uuid    NOT NULL,
    user_id    uuid    NOT NULL,
    product_id uuid    NOT NULL,
    quantity   integer NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    PRIMARY KEY (tenant_id, user_id, product_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES carts ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, product_id) REFERENCES products
);
