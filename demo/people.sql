-- The demo's personal data, from people.csv into a temporary table of this session. \copy sends
-- it as COPY data, which neither the statement log, pg_stat_statements nor pg_stat_activity
-- shows. Applications get the same by binding values as parameters (psql 15 cannot), with
-- log_parameter_max_length = 0 if statements are logged.
\set QUIET on
CREATE TEMP TABLE people (id int PRIMARY KEY, name text, tax_id text, dob date, email text, ip text);
\copy people FROM 'people.csv' WITH (FORMAT csv, HEADER)
\set QUIET off
