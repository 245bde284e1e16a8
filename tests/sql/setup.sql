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
-- Flips one bit of one byte.
CREATE FUNCTION akko_test.flip(b bytea, i int) RETURNS bytea LANGUAGE sql AS
    $$ SELECT set_byte(b, i, get_byte(b, i) # 1) $$;
