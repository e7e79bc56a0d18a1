-- Idempotency keys are scoped to the user who created the order, not to the whole tenant: two
-- users of a tenant may use the same key independently, and neither learns that the other used
-- it (a tenant-wide scope answered ALREADY_EXISTS, which told the second user the key was
-- taken). Existing rows keep their keys; the tenant-wide uniqueness implied the per-user one.
ALTER TABLE orders DROP CONSTRAINT orders_tenant_id_idempotency_key_key;
ALTER TABLE orders ADD CONSTRAINT orders_idempotency_per_user UNIQUE (tenant_id, user_id, idempotency_key);
