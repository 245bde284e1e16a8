-- akko_crypt 0.1.0 to 0.2.0 (ALTER EXTENSION akko_crypt UPDATE).
-- Views hand plaintext to the protect trigger with utf8_bytes instead of convert_to, and
-- create_view refuses an empty view name. Views built by 0.1.0 keep working as they are;
-- akko_crypt.refresh_views() rebuilds them the new way.

CREATE FUNCTION utf8_bytes(value text)
    RETURNS bytea LANGUAGE c STABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'akko_utf8_bytes';
COMMENT ON FUNCTION utf8_bytes(text) IS
    'The UTF-8 bytes of a text: how a decrypting view hands plaintext to the protect trigger';

CREATE OR REPLACE FUNCTION build_view(view_schema name, view_name name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d akko_crypt.decrypted_views;
    target text;
    view_ident text := format('%I.%I', view_schema, view_name);
    select_list text;
    key_match text;
    insert_columns text;
    insert_values text;
    update_list text;
    overriding text;
    grant_item record;
    column_default record;
    privilege record;
BEGIN
    SELECT * INTO d FROM akko_crypt.decrypted_views v
     WHERE v.view_schema = build_view.view_schema AND v.view_name = build_view.view_name;
    target := d.tbl::text;
    -- Every live column in table order, protected ones opened and cast back; the
    -- plaintext columns of a migration and the blind indexes are not shown.
    CREATE TEMPORARY TABLE IF NOT EXISTS akko_view_columns (
        attnum int, attname name, expr text, write_expr text, is_key boolean,
        generated boolean, identity "char", default_expr text, protected boolean) ON COMMIT DROP;
    TRUNCATE akko_view_columns;
    INSERT INTO akko_view_columns
    SELECT a.attnum, a.attname,
           CASE WHEN p.col IS NULL THEN format('t.%I', a.attname) ELSE akko_crypt.read_expression(p, 't.') END,
           CASE WHEN p.col IS NULL THEN format('NEW.%I', a.attname)
                WHEN p.mode = 'jsonb' THEN format('NEW.%I', a.attname)
                ELSE format('akko_crypt.utf8_bytes(NEW.%I::pg_catalog.text)', a.attname) END,
           EXISTS (SELECT FROM pg_index i WHERE i.indrelid = d.tbl AND i.indisprimary AND a.attnum = ANY (i.indkey::int2[])),
           a.attgenerated <> '', a.attidentity,
           CASE WHEN a.attidentity <> '' THEN format('nextval(%L::regclass)', pg_get_serial_sequence(target, a.attname))
                ELSE pg_get_expr(ad.adbin, ad.adrelid) END,
           p.col IS NOT NULL
      FROM pg_attribute a
      LEFT JOIN akko_crypt.protected_columns p ON p.tbl = d.tbl AND p.col = a.attname
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attrelid = d.tbl AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname NOT IN (SELECT x.attname FROM akko_crypt.protected_columns q,
                                    LATERAL (VALUES (q.plain_col), (q.bidx_col)) AS x(attname)
                              WHERE q.tbl = d.tbl AND x.attname IS NOT NULL);
    SELECT string_agg(format('%s AS %I', c.expr, c.attname), ', ' ORDER BY c.attnum) INTO select_list
      FROM akko_view_columns c;
    EXECUTE format('CREATE VIEW %s WITH (security_invoker = true) AS SELECT %s FROM %s AS t',
                   view_ident, select_list, target);
    EXECUTE format('COMMENT ON VIEW %s IS %L', view_ident,
                   format('Decrypting view of %s made by akko_crypt.create_view; rebuild it with akko_crypt.refresh_views()', target));
    FOR column_default IN SELECT * FROM akko_view_columns c WHERE c.default_expr IS NOT NULL LOOP
        EXECUTE format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', view_ident,
                       column_default.attname, column_default.default_expr);
    END LOOP;

    -- Writable through rules, one set-based statement each, when rows have a key.
    SELECT string_agg(format('t.%1$I = OLD.%1$I', c.attname), ' AND ') INTO key_match
      FROM akko_view_columns c WHERE c.is_key;
    IF key_match IS NOT NULL THEN
        SELECT string_agg(quote_ident(c.attname), ', ' ORDER BY c.attnum),
               string_agg(c.write_expr, ', ' ORDER BY c.attnum),
               CASE WHEN bool_or(c.identity = 'a') THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END
          INTO insert_columns, insert_values, overriding
          FROM akko_view_columns c WHERE NOT c.generated;
        SELECT string_agg(CASE WHEN c.protected THEN format(
                   '%1$I = CASE WHEN NEW.%1$I::pg_catalog.text IS NOT DISTINCT FROM OLD.%1$I::pg_catalog.text '
                   'THEN t.%1$I ELSE %2$s END', c.attname, c.write_expr)
                   ELSE format('%I = %s', c.attname, c.write_expr) END, ', ' ORDER BY c.attnum)
          INTO update_list
          FROM akko_view_columns c WHERE NOT c.generated AND c.identity <> 'a';
        EXECUTE format('CREATE RULE akko_crypt_insert AS ON INSERT TO %s DO INSTEAD '
                       'INSERT INTO %s AS t (%s)%s VALUES (%s) RETURNING %s',
                       view_ident, target, insert_columns, overriding, insert_values, select_list);
        EXECUTE format('CREATE RULE akko_crypt_update AS ON UPDATE TO %s DO INSTEAD '
                       'UPDATE %s AS t SET %s WHERE %s RETURNING %s',
                       view_ident, target, update_list, key_match, select_list);
        EXECUTE format('CREATE RULE akko_crypt_delete AS ON DELETE TO %s DO INSTEAD '
                       'DELETE FROM %s AS t WHERE %s RETURNING %s',
                       view_ident, target, key_match, select_list);
    END IF;
    DROP TABLE akko_view_columns;

    IF d.view_owner IS NOT NULL AND d.view_owner <> current_user THEN
        EXECUTE format('ALTER VIEW %s OWNER TO %I', view_ident, d.view_owner);
    END IF;
    FOR grant_item IN SELECT item FROM unnest(d.view_acl) AS item LOOP
        BEGIN
            FOR privilege IN SELECT x.grantee, x.privilege_type, x.is_grantable
                               FROM aclexplode(ARRAY[grant_item.item::aclitem]) x LOOP
                EXECUTE format('GRANT %s ON %s TO %s%s', privilege.privilege_type, view_ident,
                               CASE WHEN privilege.grantee = 0 THEN 'PUBLIC'
                                    ELSE quote_ident(privilege.grantee::regrole::text) END,
                               CASE WHEN privilege.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
            END LOOP;
        EXCEPTION WHEN undefined_object THEN
            RAISE WARNING 'grant % of view % not restored: its role does not exist', grant_item.item, view_ident;
        END;
    END LOOP;
END $$;

CREATE OR REPLACE FUNCTION create_view(tbl regclass, view_name name DEFAULT NULL) RETURNS regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target text := akko_crypt.owned_table(tbl);
    schema_name name;
    name name;
BEGIN
    IF create_view.view_name = '' THEN
        RAISE EXCEPTION 'the view name must not be empty' USING ERRCODE = '22023',
            HINT = 'Leave view_name out for <table>_decrypted.';
    END IF;
    SELECT n.nspname, coalesce(create_view.view_name, left(c.relname, 53) || '_decrypted')
      INTO schema_name, name
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = tbl;
    IF NOT EXISTS (SELECT FROM akko_crypt.decrypted_views d WHERE d.view_schema = schema_name AND d.view_name = name) THEN
        IF to_regclass(format('%I.%I', schema_name, name)) IS NOT NULL THEN
            RAISE EXCEPTION 'relation %.% already exists', quote_ident(schema_name), quote_ident(name)
                USING ERRCODE = '42P07', HINT = 'Name the view with create_view(tbl, view_name => ...).';
        END IF;
        INSERT INTO akko_crypt.decrypted_views (view_schema, view_name, tbl) VALUES (schema_name, name, tbl);
    ELSIF (SELECT d.tbl FROM akko_crypt.decrypted_views d WHERE d.view_schema = schema_name AND d.view_name = name) <> tbl THEN
        RAISE EXCEPTION 'view %.% decrypts another table', quote_ident(schema_name), quote_ident(name) USING ERRCODE = '42P07';
    END IF;
    PERFORM akko_crypt.rebuild_views(tbl);
    RETURN format('%I.%I', schema_name, name)::regclass;
END $$;
