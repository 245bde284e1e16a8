-- Data classes. Each has its own key versions in akko_crypt.keyring, stored only wrapped
-- under the session's root key. The built-in classes come with the extension, user-added ones are
-- carried by pg_dump.
CREATE TABLE data_class (
    name       text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    builtin    boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE data_class IS 'Data classes known to akko_crypt.seal_pii; add one with akko_crypt.add_class(name)';
INSERT INTO data_class (name, builtin) VALUES ('identity', true), ('financial', true), ('operational', true),
    ('blind_index', true);  -- keys of blind indexes (akko_crypt.protect(..., blind_index => true))
SELECT pg_catalog.pg_extension_config_dump('data_class', 'WHERE NOT builtin');
GRANT SELECT ON data_class TO PUBLIC;
