-- Runs first: the extension, and a helper that turns an error into "SQLSTATE: message"
-- so that expected files pin both.
CREATE EXTENSION akko_crypt;
CREATE SCHEMA akko_test;
CREATE FUNCTION akko_test.error_of(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- The plan of a statement as it ran, as PostgreSQL 15 prints it: 18 gives the actual rows
-- per loop two decimals, rounded here to the whole number 15 prints (half to even, as its
-- printf does), and adds how much
-- memory a materialized node used, left out.
CREATE FUNCTION akko_test.plan_run(statement text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    actual_rows text;
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) ' || statement LOOP
        CONTINUE WHEN line ~ '^\s*Storage: ';
        actual_rows := substring(line FROM 'rows=([0-9.]+)');
        IF actual_rows IS NOT NULL THEN
            line := replace(line, 'rows=' || actual_rows, 'rows=' || round(actual_rows::float8));
        END IF;
        RETURN NEXT line;
    END LOOP;
END $$;
-- Flips one bit of one byte.
CREATE FUNCTION akko_test.flip(b bytea, i int) RETURNS bytea LANGUAGE sql AS
    $$ SELECT set_byte(b, i, get_byte(b, i) # 1) $$;
