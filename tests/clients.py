"""Real clients against a protected table in text mode: psycopg 3 (typed parameters, server-side
prepared statements, executemany, COPY, upserts) and SQLAlchemy 2 (ORM inserts and merges,
on_conflict_do_update / do_nothing), with the key loaded by the README's own pool snippets
(the ```python blocks of "Setting the key at checkout", run as written). Prints one TAP line
per check; exits non-zero if any failed.

    clients.py HOST_DIR PORT README
"""

import datetime
import re
import sys
from decimal import Decimal

import psycopg
from sqlalchemy import Date, Numeric, String, create_engine, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

host, port, readme = sys.argv[1], sys.argv[2], sys.argv[3]
root_key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
failures = 0


def check(name, passed):
    global failures
    print(("ok - " if passed else "not ok - ") + name, flush=True)
    failures += 0 if passed else 1


def conninfo_for(user):
    return f"host={host} port={port} dbname=clients user={user}"


def admin():
    conn = psycopg.connect(conninfo_for("postgres"), autocommit=True)
    conn.execute("SELECT set_config('akko_crypt.key', %s, false)", (root_key,))
    return conn


def python_blocks(section):
    """The ```python blocks of one '## ' section of the README, in order."""
    text = open(readme, encoding="utf-8").read()
    body = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M).group(1)
    return [re.sub(r"^  ", "", block, flags=re.M) for block in re.findall(r"```python\n(.*?)```", body, re.S)]


with psycopg.connect(conninfo_for("postgres"), dbname="postgres", autocommit=True) as conn:
    conn.execute("CREATE DATABASE clients")
with admin() as conn:
    for statement in [
        "CREATE EXTENSION akko_crypt",
        "CREATE ROLE app LOGIN",
        "CREATE TABLE customers (id serial PRIMARY KEY, name text, email text NOT NULL,"
        " tax_id text, born date, balance numeric(10,2))",
        "SELECT akko_crypt.protect('customers', 'email', mode => 'text', blind_index => true,"
        " unique_index => true, normalization => 'trim_lower', bind_row => true)",
        "SELECT akko_crypt.protect('customers', 'tax_id', mode => 'text')",
        "SELECT akko_crypt.protect('customers', 'born', mode => 'text', bind_row => true)",
        "SELECT akko_crypt.protect('customers', 'balance', mode => 'text', class => 'financial')",
        "SELECT akko_crypt.create_view('customers')",
        "GRANT SELECT, INSERT, UPDATE, DELETE ON customers TO app",
        "GRANT USAGE ON SEQUENCE customers_id_seq TO app",
        "SELECT akko_crypt.grant_privilege('seal', 'app', 'identity')",
        "SELECT akko_crypt.grant_privilege('seal', 'app', 'financial')",
    ]:
        conn.execute(statement)

# --- psycopg 3, as the application role, which may seal but not open ------------------
tricky = ["\\x41424344", "AB\\12", "DOMAIN\\\\jdoe", "o'brien", "tab\there", "ünï©ødé"]
with psycopg.connect(conninfo_for("app")) as conn:
    conn.execute("SELECT set_config('akko_crypt.key', %s, false)", (root_key,))
    conn.commit()
    with conn.cursor() as cur:
        # Typed parameters: str, datetime.date and Decimal, bound as text, date and numeric.
        cur.execute(
            "INSERT INTO customers (name, email, tax_id, born, balance) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            ("Ada", "ada@example.com", "123-45-6789", datetime.date(1815, 12, 10), Decimal("1234.50")),
        )
        ada = cur.fetchone()[0]
        # Server-side prepared statements, run many times.
        for i, value in enumerate(tricky):
            cur.execute(
                "INSERT INTO customers (name, email, tax_id, born) VALUES (%s, %s, %s, %s)",
                (f"tricky{i}", f"t{i}@example.com", value, datetime.date(2000, 1, 1 + i)),
                prepare=True,
            )
        cur.executemany(
            "INSERT INTO customers (name, email, balance) VALUES (%s, %s, %s)",
            [(f"bulk{i}", f"bulk{i}@example.com", Decimal(i) / 4) for i in range(20)],
        )
        with cur.copy("COPY customers (name, email, tax_id, born, balance) FROM STDIN") as copy:
            for i in range(5):
                copy.write_row((f"copy{i}", f"copy{i}@example.com", f"555-00-000{i}", datetime.date(1970, 1, 1 + i), Decimal("7.70")))
        # An upsert on the blind index from a proposed row with another id, and one on the key.
        cur.execute(
            "INSERT INTO customers (name, email, tax_id) VALUES (%s, %s, %s) "
            "ON CONFLICT (email_bidx) DO UPDATE SET tax_id = EXCLUDED.tax_id, email = EXCLUDED.email RETURNING id",
            ("Ada again", " ADA@example.com", "999-99-9999"),
        )
        upserted = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO customers (id, name, email, born) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET born = EXCLUDED.born",
            (ada, "ignored", "ignored@example.com", datetime.date(1815, 12, 11)),
        )
        cur.execute("INSERT INTO customers (name, email) VALUES (%s, %s) ON CONFLICT DO NOTHING", ("dup", "ada@example.com "))
        nothing = cur.rowcount
    conn.commit()
check("psycopg: the upsert on the blind index updated Ada's row", upserted == ada)
check("psycopg: ON CONFLICT DO NOTHING inserted nothing for a duplicate email", nothing == 0)

with admin() as conn:
    rows = dict(conn.execute("SELECT name, row(email, tax_id, born, balance)::text FROM customers_decrypted").fetchall())
    check("psycopg: typed parameters stored and read back in their types",
          rows["Ada"] == '(" ADA@example.com",999-99-9999,1815-12-11,1234.50)')
    stored = dict(conn.execute("SELECT name, tax_id FROM customers_decrypted WHERE name LIKE 'tricky%'").fetchall())
    check("psycopg: backslashes, quotes, tabs and non-ASCII text stored as written",
          [stored[f"tricky{i}"] for i in range(len(tricky))] == tricky)
    check("psycopg: executemany and COPY rows sealed and open",
          conn.execute("SELECT count(*) FROM customers_decrypted WHERE name LIKE 'bulk%' OR (name LIKE 'copy%' AND born >= '1970-01-01')").fetchone()[0] == 25)
    check("psycopg: the blind index finds the upserted email",
          conn.execute("SELECT id FROM customers WHERE email_bidx = akko_crypt.blind_index('ada@example.com', 'customers', 'email')").fetchone()[0] == ada)

# --- SQLAlchemy 2, with the README's checkout listener -----------------------------------
engine = create_engine(f"postgresql+psycopg://app@/clients?host={host}&port={port}", pool_size=1, max_overflow=0)
blocks = python_blocks("Setting the key at checkout")
check(f"the README has the pool snippets ({len(blocks)} python blocks)", len(blocks) >= 2)
sqlalchemy_snippet = next(b for b in blocks if "sqlalchemy" in b)
exec(sqlalchemy_snippet, {"engine": engine, "root_key": root_key})


class Base(DeclarativeBase):
    pass


class Customer(Base):
    """The table as the application writes it: its protected columns are text (they hold
    envelopes, and take plaintext of any type); plaintext is read from the view."""
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String)
    email: Mapped[str] = mapped_column(String)
    tax_id: Mapped[str | None] = mapped_column(String)
    born: Mapped[object] = mapped_column(String)
    balance: Mapped[object] = mapped_column(String)


class CustomerRead(Base):
    """The decrypting view, in the original types, for a role that may open."""
    __tablename__ = "customers_decrypted"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String)
    email: Mapped[str] = mapped_column(String)
    tax_id: Mapped[str | None] = mapped_column(String)
    born: Mapped[datetime.date | None] = mapped_column(Date)
    balance: Mapped[Decimal | None] = mapped_column(Numeric(10, 2))


with Session(engine) as session:
    session.add(Customer(name="Grace", email="grace@example.com", tax_id="987-65-4321",
                         born=datetime.date(1906, 12, 9), balance=Decimal("10.00")))
    session.commit()
    grace = session.execute(select(Customer.id).where(Customer.name == "Grace")).scalar_one()
# The application's transaction fails and rolls back; the key set at checkout survives it.
with Session(engine) as session:
    try:
        session.add(Customer(id=grace, name="clash", email="clash@example.com"))
        session.commit()
    except Exception:
        session.rollback()
    try:
        session.add(Customer(name="Linus", email="linus@example.com", born=datetime.date(1969, 12, 28)))
        session.commit()
        after_rollback = None
    except Exception as e:
        after_rollback = getattr(e.orig, "sqlstate", repr(e)) if hasattr(e, "orig") else repr(e)
        session.rollback()
    check(f"SQLAlchemy: after a rollback the same connection still seals ({after_rollback or 'no error'})",
          after_rollback is None)
# A new connection whose first transaction rolls back, and goes on within the same
# checkout: the key must not have been part of that transaction.
fresh = create_engine(f"postgresql+psycopg://app@/clients?host={host}&port={port}", pool_size=1, max_overflow=0)
exec(sqlalchemy_snippet, {"engine": fresh, "root_key": root_key})
with fresh.connect() as connection:
    try:
        connection.exec_driver_sql("INSERT INTO customers (id, name, email) VALUES (%s, 'clash', 'c2@example.com')", (grace,))
    except Exception:
        connection.rollback()
    try:
        connection.exec_driver_sql("INSERT INTO customers (name, email) VALUES ('Ken', 'ken@example.com')")
        connection.commit()
        same_checkout = None
    except Exception as e:
        same_checkout = getattr(getattr(e, "orig", None), "sqlstate", None) or repr(e)
        connection.rollback()
check(f"SQLAlchemy: a connection that rolled back still seals within the same checkout ({same_checkout or 'no error'})",
      same_checkout is None)
fresh.dispose()
with Session(engine) as session:
    session.merge(Customer(id=grace, name="Grace", email="grace@example.com", tax_id="111-22-3333",
                           born=datetime.date(1906, 12, 9), balance=Decimal("11.00")))
    session.commit()
    table = Customer.__table__
    statement = insert(table).values(name="Grace H", email="GRACE@example.com", balance=Decimal("12.00"))
    session.execute(statement.on_conflict_do_update(
        index_elements=["email_bidx"],
        set_={"name": statement.excluded.name, "email": statement.excluded.email, "balance": statement.excluded.balance}))
    session.execute(insert(table).values(name="x", email="linus@example.com").on_conflict_do_nothing())
    session.commit()
engine.dispose()
reader = create_engine(f"postgresql+psycopg://postgres@/clients?host={host}&port={port}")
exec(sqlalchemy_snippet, {"engine": reader, "root_key": root_key})
with Session(reader) as session:
    rows = {c.name: c for c in session.scalars(select(CustomerRead))}
    grace_h, linus = rows.get("Grace H"), rows.get("Linus")
    check("SQLAlchemy: ORM insert, merge and on_conflict_do_update stored and sealed Grace's row",
          grace_h is not None and (grace_h.email, grace_h.tax_id, grace_h.born, grace_h.balance)
          == ("GRACE@example.com", "111-22-3333", datetime.date(1906, 12, 9), Decimal("12.00")))
    check("SQLAlchemy: the insert after the rollback was sealed",
          linus is not None and (linus.email, linus.born) == ("linus@example.com", datetime.date(1969, 12, 28)))
    check("SQLAlchemy: on_conflict_do_nothing left Linus alone", "x" not in rows)
reader.dispose()

# --- psycopg_pool, with the README's configure callback --------------------------------
pool_snippet = next(b for b in blocks if "psycopg_pool" in b)
namespace = {"conninfo": conninfo_for("app"), "root_key": root_key}
exec(pool_snippet, namespace)
pool = namespace["pool"]
with pool.connection() as conn:
    try:
        conn.execute("INSERT INTO customers (id, name, email) VALUES (%s, %s, %s)", (grace, "clash", "c@example.com"))
    except psycopg.errors.UniqueViolation:
        pass
with pool.connection() as conn:
    conn.execute("INSERT INTO customers (name, email, tax_id) VALUES (%s, %s, %s)", ("Pooled", "pool@example.com", "444-55-6666"))
pool.close()
with admin() as conn:
    check("psycopg_pool: the key set by configure outlived a failed transaction",
          conn.execute("SELECT tax_id FROM customers_decrypted WHERE name = 'Pooled'").fetchone() == ("444-55-6666",))

# --- Nothing in clear ------------------------------------------------------------------
with admin() as conn:
    unsealed = conn.execute(
        "SELECT count(*) FROM customers WHERE NOT email LIKE '$akko:%' OR NOT coalesce(tax_id, '$akko:') LIKE '$akko:%'"
        " OR NOT coalesce(born, '$akko:') LIKE '$akko:%' OR NOT coalesce(balance, '$akko:') LIKE '$akko:%'").fetchone()[0]
    total = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    check(f"every protected value of the {total} rows the clients wrote is an envelope", unsealed == 0 and total > 30)
    conn.execute("SELECT akko_crypt.lock()")
    try:
        with conn.transaction():
            conn.execute("INSERT INTO customers (name, email) VALUES ('nokey', 'nokey@example.com')")
        refused = None
    except psycopg.Error as e:
        refused = e.sqlstate
    check("without the key a client's insert is refused (55000), nothing stored", refused == "55000")

print(f"clients: {failures} failed")
sys.exit(1 if failures else 0)
