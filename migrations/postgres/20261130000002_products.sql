-- Products and their versions. A version is kept whole as JSON: it is read whole (to price a
-- claim or check eligibility) and never queried by its inner fields.

CREATE TABLE products (
    id              TEXT PRIMARY KEY,
    organization    TEXT NOT NULL REFERENCES organizations (id),
    layer           TEXT NOT NULL CHECK (layer IN ('base', 'complementary', 'primary')),
    current_version INTEGER NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX products_organization ON products (organization, id);

CREATE TABLE product_versions (
    product_id     TEXT NOT NULL REFERENCES products (id),
    version        INTEGER NOT NULL,
    effective_from DATE NOT NULL,
    body           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (product_id, version)
);
