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
CREATE TRIGGER sharing_deduction_references_on_insert AFTER INSERT ON sharing_deduction
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION sharing_deduction_references_exist();
CREATE TRIGGER sharing_deduction_references_on_update AFTER UPDATE ON sharing_deduction
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION sharing_deduction_references_exist();

CREATE FUNCTION sharing_row_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE restrict_violation USING
        MESSAGE = format('%s rows are never deleted and keep their id (deduction lines name them): id %s',
                         TG_TABLE_NAME, OLD.id),
        TABLE = TG_TABLE_NAME;
END $$;
CREATE TRIGGER sharing_usagerecord_kept BEFORE DELETE ON sharing_usagerecord
    FOR EACH ROW EXECUTE FUNCTION sharing_row_kept();
CREATE TRIGGER sharing_usagerecord_id_kept BEFORE UPDATE OF id ON sharing_usagerecord
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION sharing_row_kept();
CREATE TRIGGER sharing_asset_kept BEFORE DELETE ON sharing_asset
    FOR EACH ROW EXECUTE FUNCTION sharing_row_kept();
CREATE TRIGGER sharing_asset_id_kept BEFORE UPDATE OF id ON sharing_asset
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION sharing_row_kept();
"""
DROP_CHECKS = """
DROP TRIGGER IF EXISTS sharing_deduction_references_on_insert ON sharing_deduction;
DROP TRIGGER IF EXISTS sharing_deduction_references_on_update ON sharing_deduction;
DROP FUNCTION IF EXISTS sharing_deduction_references_exist();
DROP TRIGGER IF EXISTS sharing_usagerecord_kept ON sharing_usagerecord;
DROP TRIGGER IF EXISTS sharing_usagerecord_id_kept ON sharing_usagerecord;
DROP TRIGGER IF EXISTS sharing_asset_kept ON sharing_asset;
DROP TRIGGER IF EXISTS sharing_asset_id_kept ON sharing_asset;
DROP FUNCTION IF EXISTS sharing_row_kept();
"""
FIELDS = ["usage_record", "asset"]


def drop_foreign_keys(schema_editor, model, fields):
    for name in fields:
        field = model._meta.get_field(name)
        for constraint in schema_editor._constraint_names(model, [field.column], foreign_key=True):
            schema_editor.execute(schema_editor._delete_fk_sql(model, constraint))


def add_foreign_keys(schema_editor, model, fields):
    """Django's own foreign keys, named as Django names them (deferrable, initially deferred)."""
    for name in fields:
        field = model._meta.get_field(name)
        schema_editor.execute(schema_editor._create_fk_sql(model, field, "_fk_%(to_table)s_%(to_column)s"))


def check_per_statement(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        drop_foreign_keys(schema_editor, apps.get_model("sharing", "Deduction"), FIELDS)
        schema_editor.execute(CHECKS, params=None)  # no placeholders: its %s are format()'s


def check_per_line(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_CHECKS, params=None)
        add_foreign_keys(schema_editor, apps.get_model("sharing", "Deduction"), FIELDS)


class Migration(migrations.Migration):

    dependencies = [
        ('sharing', '0003_deduction_drop_redundant_record_index'),
    ]

    operations = [
        migrations.RunPython(check_per_statement, check_per_line),
    ]
