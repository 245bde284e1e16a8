-- Table integration: protected columns, their migration in batches, decrypting views.
--
-- These functions run with the caller's privileges (the DDL they issue needs the table's
-- owner) and with search_path pinned, so every name they build into a statement is quoted
-- (format %I, %L, or a regclass's own quoted output). The registries are readable by all
-- and writable only for rows of tables the caller owns (row security), and pg_dump carries
-- them, so a restored database keeps its protected columns and views.

CREATE TABLE protected_columns (
    tbl              regclass NOT NULL,
    col              name NOT NULL,
    class            text NOT NULL REFERENCES data_class (name),
    mode             text NOT NULL CHECK (mode IN ('bytea', 'jsonb')),
    original_type    text NOT NULL,
    binding_id       bytea NOT NULL UNIQUE CHECK (length(binding_id) = 16),
    bind_row         boolean NOT NULL DEFAULT false,
    bidx_col         name,
    bidx_key_version integer,
    bidx_normalize   text CHECK (bidx_normalize IN ('none', 'lower', 'trim_lower')),
    plain_col        name,
    restore_not_null boolean NOT NULL DEFAULT false,
    state            text NOT NULL CHECK (state IN ('migrating', 'protected')),
    next_block       bigint NOT NULL DEFAULT 0,
    table_blocks     bigint NOT NULL DEFAULT 0,
    migrated         bigint NOT NULL DEFAULT 0,
    protected_at     timestamptz NOT NULL DEFAULT now(),
    migrated_at      timestamptz,
    PRIMARY KEY (tbl, col)
);
COMMENT ON TABLE protected_columns IS
    'Columns that akko_crypt.protect keeps sealed, how, and how far their migration has come';
COMMENT ON COLUMN protected_columns.original_type IS 'The column''s type before protect; the decrypting view casts back to it';
COMMENT ON COLUMN protected_columns.binding_id IS 'Random id that row-bound values are bound to, with the row''s primary key';
COMMENT ON COLUMN protected_columns.plain_col IS 'While a bytea-mode column migrates: the renamed column that still holds plaintext';
SELECT pg_catalog.pg_extension_config_dump('protected_columns', '');

CREATE TABLE decrypted_views (
    view_schema name NOT NULL,
    view_name   name NOT NULL,
    tbl         regclass NOT NULL,
    view_owner  name,
    view_acl    text[],
    PRIMARY KEY (view_schema, view_name)
);
COMMENT ON TABLE decrypted_views IS
    'Views made by akko_crypt.create_view; akko_crypt.refresh_views rebuilds them, keeping their owner and grants';
SELECT pg_catalog.pg_extension_config_dump('decrypted_views', '');

GRANT SELECT, INSERT, UPDATE, DELETE ON protected_columns, decrypted_views TO PUBLIC;
ALTER TABLE protected_columns ENABLE ROW LEVEL SECURITY;
ALTER TABLE decrypted_views ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone_reads ON protected_columns FOR SELECT USING (true);
CREATE POLICY table_owner_writes ON protected_columns FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE'));
CREATE POLICY everyone_reads ON decrypted_views FOR SELECT USING (true);
CREATE POLICY table_owner_writes ON decrypted_views FOR ALL
    USING (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE'))
    WITH CHECK (pg_catalog.pg_has_role((SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = tbl), 'USAGE'));

-- The table as a quoted name, after checking that the caller may change it.
CREATE FUNCTION owned_table(tbl regclass) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'the table must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT c.relkind, c.relowner INTO rel FROM pg_class c WHERE c.oid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation with OID % does not exist', tbl::oid USING ERRCODE = '42P01';
    ELSIF rel.relkind = 'p' THEN
        RAISE EXCEPTION '% is a partitioned table', tbl USING ERRCODE = '0A000',
            HINT = 'akko_crypt protects ordinary tables; a partitioned table is not supported.';
    ELSIF rel.relkind <> 'r' THEN
        RAISE EXCEPTION '% is not an ordinary table', tbl USING ERRCODE = '42809';
    ELSIF NOT pg_has_role(rel.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', tbl USING ERRCODE = '42501';
    END IF;
    RETURN tbl::text;
END $$;

-- The expression that binds a value of column p to its row: NULL, or row_context over the
-- primary key columns, each prefixed with `prefix` ('t.' in a view, '' in ALTER ... USING).
CREATE FUNCTION context_expression(p protected_columns, prefix text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN NOT p.bind_row THEN 'NULL::pg_catalog.bytea' ELSE
        format('akko_crypt.row_context(%L::pg_catalog.bytea, %s)', p.binding_id,
               (SELECT string_agg(prefix || quote_ident(a.attname), ', ' ORDER BY k.n)
                FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n), pg_attribute a
                WHERE i.indrelid = p.tbl AND i.indisprimary AND a.attrelid = p.tbl AND a.attnum = k.attnum))
    END
$$;

-- The plaintext of column p, as its original type.
CREATE FUNCTION read_expression(p protected_columns, prefix text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p.plain_col IS NULL THEN opened
                ELSE format('COALESCE(%s, %s%I)', opened, prefix, p.plain_col) END
    FROM (SELECT CASE
            WHEN p.mode = 'jsonb' THEN format('akko_crypt.open_pii(%s%I, %s)', prefix, p.col, ctx)
            WHEN p.original_type IN ('json', 'jsonb')
                THEN format('akko_crypt.open_pii(%s%I, %s)::%s', prefix, p.col, ctx, p.original_type)
            ELSE format('akko_crypt.open_text(%s%I, %s)::%s', prefix, p.col, ctx, p.original_type)
          END AS opened
          FROM (SELECT akko_crypt.context_expression(p, prefix) AS ctx) c) o
$$;

-- The columns a migration batch touches: UPDATE t SET x = x makes the trigger seal x.
CREATE FUNCTION migration_source(p protected_columns) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT quote_ident(coalesce(p.plain_col, p.col))
$$;

-- Rows of column p that still hold plaintext.
CREATE FUNCTION unsealed_condition(p protected_columns) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN p.plain_col IS NOT NULL THEN format('%I IS NOT NULL', p.plain_col)
                WHEN p.mode = 'jsonb' THEN format(
                    'CASE WHEN jsonb_typeof(%1$I) = ''object'' THEN NOT (%1$I - ''$akko'' = ''{}''::jsonb '
                    'AND jsonb_typeof(%1$I -> ''$akko'') = ''string'') ELSE %1$I IS NOT NULL END', p.col)
                ELSE 'false' END
$$;

-- Creates, or drops when nothing is left to protect, the table's one sealing trigger.
-- BEFORE triggers fire in name order: "zz_" lets the table's own BEFORE triggers change a
-- value before it is sealed.
CREATE FUNCTION install_trigger(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = tbl AND g.tgname = 'zz_akko_crypt_protect') THEN
        EXECUTE format('DROP TRIGGER zz_akko_crypt_protect ON %s', tbl);
    END IF;
    IF EXISTS (SELECT FROM akko_crypt.protected_columns p WHERE p.tbl = install_trigger.tbl) THEN
        EXECUTE format('CREATE TRIGGER zz_akko_crypt_protect BEFORE INSERT OR UPDATE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION akko_crypt.protect_row()', tbl);
    END IF;
END $$;

-- Seals the plaintext left in the rows of blocks [first_block, end_block) (all rows when
-- first_block is NULL); returns how many rows it touched.
CREATE FUNCTION migrate_batch(tbl regclass, first_block bigint, end_block bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    assignments text;
    unsealed text;
    touched bigint;
BEGIN
    SELECT string_agg(format('%1$s = %1$s', akko_crypt.migration_source(p)), ', '),
           string_agg('(' || akko_crypt.unsealed_condition(p) || ')', ' OR ')
      INTO assignments, unsealed
      FROM akko_crypt.protected_columns p
     WHERE p.tbl = migrate_batch.tbl AND p.state = 'migrating';
    IF assignments IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format('UPDATE ONLY %s SET %s WHERE (%s)%s', tbl, assignments, unsealed,
                   CASE WHEN first_block IS NULL THEN '' ELSE
                       format(' AND ctid >= ''(%s,0)''::tid AND ctid < ''(%s,0)''::tid', first_block, end_block) END);
    GET DIAGNOSTICS touched = ROW_COUNT;
    UPDATE akko_crypt.protected_columns p
       SET migrated = p.migrated + touched, next_block = coalesce(end_block, p.next_block)
     WHERE p.tbl = migrate_batch.tbl AND p.state = 'migrating';
    RETURN touched;
END $$;

-- Drops the renamed plaintext column of p, if any, and gives p back its NOT NULL.
CREATE FUNCTION drop_plain_column(tbl regclass, p protected_columns) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p.plain_col IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %s DROP COLUMN %I', tbl, p.plain_col);
    END IF;
    IF p.restore_not_null THEN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET NOT NULL', tbl, p.col);
    END IF;
END $$;

-- Ends the migration of the table's migrating columns: seals whatever is still plaintext
-- (normally nothing), drops the renamed plaintext columns, restores NOT NULL. Takes an
-- ACCESS EXCLUSIVE lock on the table until commit; SET NOT NULL scans the table under it.
CREATE FUNCTION migrate_finish(tbl regclass) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p akko_crypt.protected_columns;
    dropping boolean;
BEGIN
    PERFORM akko_crypt.migrate_batch(tbl, NULL, NULL);
    SELECT bool_or(c.plain_col IS NOT NULL) INTO dropping
      FROM akko_crypt.protected_columns c WHERE c.tbl = migrate_finish.tbl AND c.state = 'migrating';
    IF dropping THEN
        PERFORM akko_crypt.set_views_aside(tbl);
    END IF;
    FOR p IN SELECT * FROM akko_crypt.protected_columns c
              WHERE c.tbl = migrate_finish.tbl AND c.state = 'migrating' LOOP
        UPDATE akko_crypt.protected_columns c
           SET state = 'protected', plain_col = NULL, restore_not_null = false, migrated_at = now()
         WHERE c.tbl = p.tbl AND c.col = p.col;
        PERFORM akko_crypt.drop_plain_column(tbl, p);
    END LOOP;
    IF dropping THEN
        PERFORM akko_crypt.rebuild_views(tbl);
    END IF;
    RETURN (SELECT coalesce(sum(c.migrated), 0) FROM akko_crypt.protected_columns c WHERE c.tbl = migrate_finish.tbl);
END $$;

CREATE FUNCTION protect(tbl regclass, col name, class text DEFAULT 'identity', mode text DEFAULT 'bytea',
                        bind_row boolean DEFAULT false, blind_index boolean DEFAULT false,
                        normalization text DEFAULT 'none', unique_index boolean DEFAULT false,
                        migrate boolean DEFAULT true)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target text := akko_crypt.owned_table(tbl);
    existing akko_crypt.protected_columns;
    att record;
    blocker text;
    plain name;
    bidx name;
    has_rows boolean;
BEGIN
    IF col IS NULL OR class IS NULL OR mode IS NULL OR bind_row IS NULL OR blind_index IS NULL
       OR normalization IS NULL OR unique_index IS NULL OR migrate IS NULL THEN
        RAISE EXCEPTION 'akko_crypt.protect: no argument may be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO existing FROM akko_crypt.protected_columns p WHERE p.tbl = protect.tbl AND p.col = protect.col;
    IF FOUND THEN
        IF existing.class = protect.class AND existing.mode = protect.mode AND existing.bind_row = protect.bind_row
           AND (existing.bidx_col IS NOT NULL) = protect.blind_index THEN
            IF existing.state = 'migrating' AND migrate THEN
                PERFORM akko_crypt.migrate_finish(tbl);
            END IF;
            RETURN (SELECT p.state FROM akko_crypt.protected_columns p WHERE p.tbl = protect.tbl AND p.col = protect.col);
        END IF;
        RAISE EXCEPTION 'column % of % is already protected, with other options', quote_ident(col), target
            USING ERRCODE = '42710', HINT = 'Run akko_crypt.unprotect first to protect it differently.';
    END IF;

    SELECT a.attnum, a.atttypid, format_type(a.atttypid, a.atttypmod) AS type_name, a.attnotnull,
           a.atthasdef, a.attidentity, a.attgenerated
      INTO att FROM pg_attribute a
     WHERE a.attrelid = tbl AND a.attname = col AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % does not exist', quote_ident(col), target USING ERRCODE = '42703';
    END IF;
    IF class = 'blind_index' OR NOT EXISTS (SELECT FROM akko_crypt.data_class d WHERE d.name = protect.class) THEN
        RAISE EXCEPTION 'data class "%" does not exist', class USING ERRCODE = '22023',
            HINT = 'Add it with SELECT akko_crypt.add_class(''name''); akko_crypt.data_class lists the classes.';
    END IF;
    IF mode = 'bytea' THEN
        IF att.atttypid = 'bytea'::regtype THEN
            RAISE EXCEPTION 'column % of % is already bytea', quote_ident(col), target USING ERRCODE = '0A000',
                HINT = 'protect converts columns of other types; seal bytea values with akko_crypt.seal_pii yourself.';
        END IF;
        IF att.atthasdef THEN
            RAISE EXCEPTION 'column % of % has a default', quote_ident(col), target USING ERRCODE = '0A000',
                HINT = 'Drop the default first; a default can be set on the decrypting view instead.';
        END IF;
    ELSIF mode = 'jsonb' THEN
        IF att.atttypid <> 'jsonb'::regtype THEN
            RAISE EXCEPTION 'column % of % is %, not jsonb', quote_ident(col), target, att.type_name
                USING ERRCODE = '42804', HINT = 'jsonb mode keeps a jsonb column as jsonb; use mode => ''bytea'' for other types.';
        END IF;
        IF blind_index THEN
            RAISE EXCEPTION 'a blind index needs bytea mode' USING ERRCODE = '0A000';
        END IF;
    ELSE
        RAISE EXCEPTION 'mode must be ''bytea'' or ''jsonb'', not %', quote_literal(mode) USING ERRCODE = '22023';
    END IF;
    IF att.attidentity <> '' OR att.attgenerated <> '' THEN
        RAISE EXCEPTION 'column % of % is an identity or generated column', quote_ident(col), target
            USING ERRCODE = '0A000';
    END IF;
    SELECT format('%s %s', CASE WHEN d.classid = 'pg_class'::regclass THEN 'index' ELSE 'constraint' END,
                  coalesce((SELECT quote_ident(ic.relname) FROM pg_class ic WHERE d.classid = 'pg_class'::regclass AND ic.oid = d.objid),
                           (SELECT quote_ident(co.conname) FROM pg_constraint co WHERE d.classid = 'pg_constraint'::regclass AND co.oid = d.objid)))
      INTO blocker FROM pg_depend d
     WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = tbl AND d.refobjsubid = att.attnum
       AND d.classid IN ('pg_class'::regclass, 'pg_constraint'::regclass) AND d.deptype IN ('a', 'n')
       AND (d.classid = 'pg_constraint'::regclass OR EXISTS (SELECT FROM pg_class ic WHERE ic.oid = d.objid AND ic.relkind = 'i'))
     LIMIT 1;
    IF blocker IS NOT NULL THEN
        RAISE EXCEPTION 'column % of % is used by %', quote_ident(col), target, blocker USING ERRCODE = '0A000',
            HINT = 'Indexes and constraints cannot work on ciphertext: drop it first; blind_index => true (with unique_index => true) gives equality lookups and uniqueness.';
    END IF;
    IF bind_row AND NOT EXISTS (SELECT FROM pg_index i WHERE i.indrelid = tbl AND i.indisprimary) THEN
        RAISE EXCEPTION '% has no primary key to bind values to', target USING ERRCODE = '0A000';
    END IF;
    IF blind_index AND normalization NOT IN ('none', 'lower', 'trim_lower') THEN
        RAISE EXCEPTION 'normalization must be ''none'', ''lower'' or ''trim_lower'', not %', quote_literal(normalization)
            USING ERRCODE = '22023';
    END IF;
    plain := CASE WHEN mode = 'bytea' THEN left(col, 52) || '_akko_plain' END;
    bidx := left(col, 58) || '_bidx';
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = tbl AND NOT a.attisdropped
                 AND (a.attname = plain AND mode = 'bytea' OR a.attname = bidx AND blind_index)) THEN
        RAISE EXCEPTION 'column % or % already exists in %', quote_ident(plain), quote_ident(bidx), target
            USING ERRCODE = '42701';
    END IF;

    PERFORM akko_crypt.set_views_aside(tbl);
    EXECUTE format('SELECT EXISTS (SELECT FROM ONLY %s)', target) INTO has_rows;
    IF mode = 'bytea' AND NOT has_rows THEN
        -- An empty table changes type at once and keeps the column's place.
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE bytea USING NULL', target, col);
        plain := NULL;
    ELSIF mode = 'bytea' THEN
        -- Only catalog changes: the plaintext stays in the renamed column until migrated.
        -- The sealed column is added last, so it moves to the end of the table.
        EXECUTE format('ALTER TABLE %s RENAME COLUMN %I TO %I', target, col, plain);
        IF att.attnotnull THEN
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP NOT NULL', target, plain);
        END IF;
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I bytea', target, col);
    END IF;
    IF blind_index THEN
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I bytea', target, bidx);
        EXECUTE format('CREATE %sINDEX ON %s (%I)', CASE WHEN unique_index THEN 'UNIQUE ' ELSE '' END, target, bidx);
    END IF;
    INSERT INTO akko_crypt.protected_columns
        (tbl, col, class, mode, original_type, binding_id, bind_row, bidx_col, bidx_key_version,
         bidx_normalize, plain_col, restore_not_null, state, table_blocks)
    VALUES (tbl, col, class, mode, att.type_name, uuid_send(gen_random_uuid()), bind_row,
            CASE WHEN blind_index THEN bidx END,
            CASE WHEN blind_index THEN akko_crypt.blind_index_key_version() END,
            CASE WHEN blind_index THEN normalization END,
            plain, att.attnotnull AND plain IS NOT NULL, 'migrating',
            pg_relation_size(tbl) / current_setting('block_size')::bigint);
    PERFORM akko_crypt.install_trigger(tbl);
    IF migrate THEN
        PERFORM akko_crypt.migrate_finish(tbl);
    END IF;
    PERFORM akko_crypt.rebuild_views(tbl);
    RETURN (SELECT p.state FROM akko_crypt.protected_columns p WHERE p.tbl = protect.tbl AND p.col = protect.col);
END $$;
COMMENT ON FUNCTION protect(regclass, name, text, text, boolean, boolean, text, boolean, boolean) IS
    'Keeps a column sealed: converts it to bytea (or seals jsonb in place), migrates its values, keeps a trigger that seals every write';

-- Migration in batches that commit separately. A procedure, so no SET search_path and
-- every name schema-qualified.
CREATE FUNCTION migrate_start(tbl regclass, batch_size integer) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    rel record;
BEGIN
    PERFORM akko_crypt.owned_table(tbl);
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, not %', coalesce(batch_size::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    SELECT c.relpages, c.reltuples INTO rel FROM pg_class c WHERE c.oid = tbl;
    UPDATE akko_crypt.protected_columns p
       SET table_blocks = pg_relation_size(migrate_start.tbl) / current_setting('block_size')::bigint
     WHERE p.tbl = migrate_start.tbl AND p.state = 'migrating';
    RETURN greatest(1, CASE WHEN rel.relpages > 0 AND rel.reltuples > 0
                            THEN ceil(batch_size / (rel.reltuples / rel.relpages)) ELSE 1 END)::bigint;
END $$;

-- One batch of a migration from where the last committed one ended; false at the end.
CREATE FUNCTION migrate_step(tbl regclass, blocks_per_batch bigint) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first_block bigint;
BEGIN
    BEGIN
        SELECT min(p.next_block) INTO first_block FROM (
            SELECT c.next_block FROM akko_crypt.protected_columns c
             WHERE c.tbl = migrate_step.tbl AND c.state = 'migrating' FOR UPDATE NOWAIT) p;
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'a migration of % is already running', tbl USING ERRCODE = '55006';
    END;
    IF first_block IS NULL OR first_block >= pg_relation_size(tbl) / current_setting('block_size')::bigint THEN
        RETURN false;
    END IF;
    PERFORM akko_crypt.migrate_batch(tbl, first_block, first_block + blocks_per_batch);
    RETURN true;
END $$;

CREATE PROCEDURE migrate(tbl regclass, batch_size integer DEFAULT 10000, INOUT migrated bigint DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    blocks_per_batch bigint := akko_crypt.migrate_start(tbl, batch_size);
BEGIN
    LOOP
        COMMIT;
        EXIT WHEN NOT akko_crypt.migrate_step(tbl, blocks_per_batch);
    END LOOP;
    migrated := akko_crypt.migrate_finish(tbl);
END $$;
COMMENT ON PROCEDURE migrate(regclass, integer, bigint) IS
    'Seals the plaintext of the table''s migrating columns in batches of about batch_size rows, a commit per batch; resumes where an interrupted run stopped';

CREATE FUNCTION unprotect(tbl regclass, col name) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    target text := akko_crypt.owned_table(tbl);
    p akko_crypt.protected_columns;
BEGIN
    SELECT * INTO p FROM akko_crypt.protected_columns c WHERE c.tbl = unprotect.tbl AND c.col = unprotect.col;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column % of % is not protected', quote_ident(col), target USING ERRCODE = '42704';
    END IF;
    PERFORM akko_crypt.set_views_aside(tbl);
    DELETE FROM akko_crypt.protected_columns c WHERE c.tbl = p.tbl AND c.col = p.col;
    PERFORM akko_crypt.install_trigger(tbl);
    IF p.mode = 'bytea' THEN
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE %s USING %s', target, p.col, p.original_type,
                       akko_crypt.read_expression(p, ''));
        PERFORM akko_crypt.drop_plain_column(tbl, p);
    ELSE
        EXECUTE format('UPDATE ONLY %s SET %I = %s WHERE %I IS NOT NULL', target, p.col,
                       akko_crypt.read_expression(p, ''), p.col);
    END IF;
    IF p.bidx_col IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %s DROP COLUMN %I', target, p.bidx_col);
    END IF;
    PERFORM akko_crypt.rebuild_views(tbl);
END $$;
COMMENT ON FUNCTION unprotect(regclass, name) IS
    'Restores a protected column to plaintext of its original type (one rewrite under an ACCESS EXCLUSIVE lock)';

-- Decrypting views.

-- Drops the table's registered views, remembering their owner and grants for the rebuild.
CREATE FUNCTION set_views_aside(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT d.view_schema, d.view_name, c.oid AS view_oid, c.relowner, c.relacl
               FROM akko_crypt.decrypted_views d
               LEFT JOIN pg_namespace n ON n.nspname = d.view_schema
               LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = d.view_name AND c.relkind = 'v'
              WHERE d.tbl = set_views_aside.tbl LOOP
        CONTINUE WHEN v.view_oid IS NULL;
        UPDATE akko_crypt.decrypted_views d
           SET view_owner = v.relowner::regrole::text::name, view_acl = v.relacl::text[]
         WHERE d.view_schema = v.view_schema AND d.view_name = v.view_name;
        EXECUTE format('DROP VIEW %I.%I', v.view_schema, v.view_name);
    END LOOP;
END $$;

CREATE FUNCTION build_view(view_schema name, view_name name) RETURNS void
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

-- Rebuilds the table's registered views from its current columns.
CREATE FUNCTION rebuild_views(tbl regclass) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
    built integer := 0;
BEGIN
    PERFORM akko_crypt.set_views_aside(tbl);
    FOR v IN SELECT d.view_schema, d.view_name FROM akko_crypt.decrypted_views d
              WHERE d.tbl = rebuild_views.tbl ORDER BY 1, 2 LOOP
        PERFORM akko_crypt.build_view(v.view_schema, v.view_name);
        built := built + 1;
    END LOOP;
    RETURN built;
END $$;

CREATE FUNCTION create_view(tbl regclass, view_name name DEFAULT NULL) RETURNS regclass
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
COMMENT ON FUNCTION create_view(regclass, name) IS
    'Creates <table>_decrypted: protected columns opened and cast back to their types, security_invoker, writable; refresh_views() rebuilds it after ALTER TABLE';

CREATE FUNCTION refresh_views() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
    built integer := 0;
BEGIN
    DELETE FROM akko_crypt.decrypted_views d WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = d.tbl);
    DELETE FROM akko_crypt.protected_columns p WHERE NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = p.tbl);
    FOR t IN SELECT DISTINCT d.tbl FROM akko_crypt.decrypted_views d
              WHERE pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = d.tbl), 'USAGE') LOOP
        built := built + akko_crypt.rebuild_views(t);
    END LOOP;
    RETURN built;
END $$;
COMMENT ON FUNCTION refresh_views() IS
    'Rebuilds every decrypting view of a table the caller owns from its table''s current columns, keeping owner and grants; returns how many';
