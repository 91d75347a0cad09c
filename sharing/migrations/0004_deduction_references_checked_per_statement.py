# Written by hand on 2026-11-23 (issue 5, Performance 4).
"""On PostgreSQL, a deduction line's usage record and asset are checked once per statement, not once per line.

A foreign key checks each new row on its own: PostgreSQL runs one query per line (an executor started and a
``FOR KEY SHARE`` row lock taken, written to the WAL, for every line). A profile of the rating put a third of
the server's CPU there; a batch of 10,000 records writes about 10,000 lines (``bench/RESULTS.md`` section 4,
"fifth session"). Here the two foreign keys of ``sharing_deduction`` that the rating's lines fill as they are
written (``usage_record_id``, ``asset_id``) are replaced by:

- a statement-level trigger with a transition table, after every ``INSERT``/``COPY`` and every ``UPDATE`` of
  lines: one anti-join of the statement's lines against the two tables (index lookups; hash joins, merge joins
  and sequential scans are turned off in the function, so that its plan, cached per session, stays index
  lookups as the tables grow; its search path is the migration's). A line naming a usage record or an asset
  that does not exist fails the statement with SQLSTATE 23503, as the foreign key did (Django's
  ``IntegrityError``), at the end of the statement rather than at the ``COMMIT`` (a line is written after its
  record and asset: the rating, the import and fixtures all do). An ``UPDATE`` re-checks every line it
  changes, even where neither column changed (a transition table cannot be limited to ``UPDATE OF`` columns);
- the other half of a foreign key, that a named row stays: usage records and assets are never deleted and
  never change their id (``BEFORE DELETE`` and ``BEFORE UPDATE OF id`` triggers, SQLSTATE 23001). The product
  deletes neither (both are ``on_delete=PROTECT`` history); rows that cannot go away need no row lock while a
  line that names them is being written, which is what made the per-line check cheap to replace.

What the foreign keys did and these do not: ``TRUNCATE`` of usage records or assets alone is not refused (a
``BEFORE TRUNCATE`` trigger would break Django's flush; the product never truncates), and ``ALTER TABLE ...
DISABLE TRIGGER USER`` turns the checks off. The trigger functions name the tables and columns as text: a later
migration renaming one of them must re-create them.

The charge's foreign key stays here: the charges are written after the lines, so it is checked at the
``COMMIT``, which a statement-level trigger cannot wait for (``0005`` replaces it another way). SQLite keeps
all three foreign keys (its triggers are per row: no gain). The model keeps ``db_constraint=True``: Django's
state and SQLite's tables are unchanged, only PostgreSQL's constraints are replaced, by ``RunPython`` below;
reversing it puts the two foreign keys back.
"""

from django.db import migrations


def after_each_statement(name: str, function: str) -> tuple[str, str]:
    """SQL that runs ``function`` after every ``INSERT``/``COPY`` and every ``UPDATE`` of deduction lines, with the
    statement's lines as ``new_lines`` (a transition table cannot serve two events: two triggers); and the SQL
    that drops them."""
    create = "".join(
        f"CREATE TRIGGER {name}_on_{event.lower()} AFTER {event} ON sharing_deduction\n"
        f"    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION {function}();\n"
        for event in ("INSERT", "UPDATE"))
    drop = "".join(f"DROP TRIGGER IF EXISTS {name}_on_{event} ON sharing_deduction;\n"
                   for event in ("insert", "update"))
    return create, drop


def rows_kept(table: str) -> tuple[str, str]:
    """SQL that refuses every delete and every change of id of ``table``'s rows (``sharing_row_kept``); and the SQL
    that drops its triggers."""
    create = (f"CREATE TRIGGER {table}_kept BEFORE DELETE ON {table}\n"
              f"    FOR EACH ROW EXECUTE FUNCTION sharing_row_kept();\n"
              f"CREATE TRIGGER {table}_id_kept BEFORE UPDATE OF id ON {table}\n"
              f"    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION sharing_row_kept();\n")
    drop = f"DROP TRIGGER IF EXISTS {table}_kept ON {table};\nDROP TRIGGER IF EXISTS {table}_id_kept ON {table};\n"
    return create, drop


def foreign_keys_replaced(fields: list[str], checks: str, drop_checks: str) -> migrations.RunPython:
    """On PostgreSQL, drop the foreign keys of ``Deduction``'s ``fields`` and run ``checks``; reversed, run
    ``drop_checks`` and put Django's own foreign keys back, under Django's names (deferrable, initially
    deferred). Nothing on SQLite."""

    def forwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        model = apps.get_model("sharing", "Deduction")
        for name in fields:
            column = model._meta.get_field(name).column
            for constraint in schema_editor._constraint_names(model, [column], foreign_key=True):
                schema_editor.execute(schema_editor._delete_fk_sql(model, constraint))
        schema_editor.execute(checks, params=None)  # no placeholders: its %s are format()'s

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        schema_editor.execute(drop_checks, params=None)
        model = apps.get_model("sharing", "Deduction")
        for name in fields:
            field = model._meta.get_field(name)
            schema_editor.execute(schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))

    return migrations.RunPython(forwards, backwards)


REFERENCES_ON_STATEMENTS = after_each_statement("sharing_deduction_references", "sharing_deduction_references_exist")
USAGE_RECORDS_KEPT, ASSETS_KEPT = rows_kept("sharing_usagerecord"), rows_kept("sharing_asset")

CHECKS = """
CREATE FUNCTION sharing_deduction_references_exist() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
SET search_path FROM CURRENT AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT n.usage_record_id INTO missing FROM new_lines n
        WHERE NOT EXISTS (SELECT FROM sharing_usagerecord u WHERE u.id = n.usage_record_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('a deduction line names usage record %s, which does not exist', missing),
            TABLE = 'sharing_deduction', COLUMN = 'usage_record_id';
    END IF;
    SELECT n.asset_id INTO missing FROM new_lines n
        WHERE n.asset_id IS NOT NULL AND NOT EXISTS (SELECT FROM sharing_asset a WHERE a.id = n.asset_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('a deduction line names asset %s, which does not exist', missing),
            TABLE = 'sharing_deduction', COLUMN = 'asset_id';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION sharing_row_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE restrict_violation USING
        MESSAGE = format('%s rows are never deleted and keep their id (deduction lines name them): id %s',
                         TG_TABLE_NAME, OLD.id),
        TABLE = TG_TABLE_NAME;
END $$;
""" + REFERENCES_ON_STATEMENTS[0] + USAGE_RECORDS_KEPT[0] + ASSETS_KEPT[0]
DROP_CHECKS = REFERENCES_ON_STATEMENTS[1] + USAGE_RECORDS_KEPT[1] + ASSETS_KEPT[1] + """
DROP FUNCTION IF EXISTS sharing_deduction_references_exist();
DROP FUNCTION IF EXISTS sharing_row_kept();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('sharing', '0003_deduction_drop_redundant_record_index'),
    ]

    operations = [
        foreign_keys_replaced(["usage_record", "asset"], CHECKS, DROP_CHECKS),
    ]
