"""The PostgreSQL function of the transfer fast path (accounts/sql/eac_transfer_create_v1.sql).

Only on PostgreSQL; on SQLite every transfer runs the Python path. A later change of the function is a new
file (``_v2``) and a new migration, so that this one keeps creating what it created.
"""

from pathlib import Path

from django.db import migrations

SQL = (Path(__file__).resolve().parent.parent / "sql" / "eac_transfer_create_v1.sql").read_text()
DROP = ("DROP FUNCTION IF EXISTS eac_transfer_create(bigint, bigint, bigint, bigint, numeric, text, date, timestamptz, "
        "inet, text, text, text, timestamptz, text)")


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SQL, params=None)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_account_available_credit_index"),
        ("core", "0003_merge"),
    ]

    operations = [migrations.RunPython(create, drop)]
