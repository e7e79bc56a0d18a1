-- A tiny schema for provision's own tests: enough to tell one database from another.
CREATE TABLE items (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL
);
