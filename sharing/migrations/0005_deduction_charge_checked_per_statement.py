# Written by hand on 2026-11-23 (issue 5, Performance 4).
"""On PostgreSQL, the charge a deduction line names is checked at the ``COMMIT`` once per statement that wrote
lines, not once per line.

The charge's foreign key had to stay deferred in ``0004``: a batch writes its lines while it rates, and its
charges after, so a line's charge exists only at the end of the transaction. Deferred, it still ran one query per
balance line at the ``COMMIT`` (seven lines in ten: about 0.37 s of the 0.75 s ``COMMIT`` of 90,000 records, while
nothing else can run; ``bench/RESULTS.md`` section 4, "fifth session"). Here it is replaced by:

- a statement-level trigger beside ``0004``'s, which notes the range of ids of the statement's lines in
  ``sharing_deduction_charge_check`` (one row per ``INSERT``/``COPY``/``UPDATE`` that writes lines naming a
  charge; an unlogged table, empty after every ``COMMIT``). A ``COPY`` gives its lines consecutive ids (with
  concurrent raters, interleaved ones: the range is at most a few times longer). Where the ids of a statement
  are sparse (explicit ids, an ``UPDATE`` of old and new lines) each line naming a charge gets a note of its own
  instead, so that no check scans far more lines than the statement wrote;
- a deferred constraint trigger on each note: at the ``COMMIT`` (or at ``SET CONSTRAINTS ... IMMEDIATE``) it
  checks, in one index range scan and anti-join, that every line of the range that names a charge names one that
  exists, then deletes the note. A line naming a charge that does not exist fails the ``COMMIT`` with SQLSTATE
  23503, as the foreign key did. Lines of other transactions inside the range are checked too: they were checked
  by their own transaction, or are not visible;
- charges are never deleted and never change their id (triggers on ``accounts_charge``, with ``0004``'s function
  ``sharing_row_kept``), so, as there, no row lock stands for the foreign key's.

Not covered, unlike the foreign key (as in ``0004``): ``TRUNCATE accounts_charge`` alone; ``ALTER TABLE ...
DISABLE TRIGGER`` and ``session_replication_role = replica``, which turn the checks off; renames of the tables
and columns the functions name as text.

SQLite keeps the foreign key. Reversing this migration puts it back on PostgreSQL.
"""

from importlib import import_module

from django.db import migrations

_0004 = import_module("sharing.migrations.0004_deduction_references_checked_per_statement")
NOTED_ON_STATEMENTS = _0004.after_each_statement("sharing_deduction_charges", "sharing_deduction_charges_noted")
CHARGES_KEPT = _0004.rows_kept("accounts_charge")

CHECKS = """
CREATE UNLOGGED TABLE sharing_deduction_charge_check (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, first_id bigint NOT NULL, last_id bigint NOT NULL);
COMMENT ON TABLE sharing_deduction_charge_check IS
    'Ranges of deduction line ids whose charges are checked at COMMIT (migration sharing 0005); empty after a COMMIT';

CREATE FUNCTION sharing_deduction_charges_exist() RETURNS trigger LANGUAGE plpgsql
SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off
SET search_path FROM CURRENT AS $$
DECLARE
    missing bigint;
BEGIN
    SELECT d.charge_id INTO missing FROM sharing_deduction d
        WHERE d.id BETWEEN NEW.first_id AND NEW.last_id AND d.charge_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM accounts_charge c WHERE c.id = d.charge_id) LIMIT 1;
    IF FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('a deduction line names charge %s, which does not exist', missing),
            TABLE = 'sharing_deduction', COLUMN = 'charge_id';
    END IF;
    DELETE FROM sharing_deduction_charge_check WHERE id = NEW.id;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER sharing_deduction_charges_exist AFTER INSERT ON sharing_deduction_charge_check
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sharing_deduction_charges_exist();

CREATE FUNCTION sharing_deduction_charges_noted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    low bigint;
    high bigint;
    named bigint;
BEGIN
    SELECT min(id), max(id), count(*) INTO low, high, named FROM new_lines WHERE charge_id IS NOT NULL;
    IF named = 0 THEN
        RETURN NULL;
    ELSIF high - low < 4 * named + 10000 THEN
        INSERT INTO sharing_deduction_charge_check (first_id, last_id) VALUES (low, high);
    ELSE  -- sparse ids: one note per line rather than a range of mostly other lines
        INSERT INTO sharing_deduction_charge_check (first_id, last_id)
            SELECT id, id FROM new_lines WHERE charge_id IS NOT NULL;
    END IF;
    RETURN NULL;
END $$;
""" + NOTED_ON_STATEMENTS[0] + CHARGES_KEPT[0]
DROP_CHECKS = CHARGES_KEPT[1] + NOTED_ON_STATEMENTS[1] + """
DROP FUNCTION IF EXISTS sharing_deduction_charges_noted();
DROP TABLE IF EXISTS sharing_deduction_charge_check;
DROP FUNCTION IF EXISTS sharing_deduction_charges_exist();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0006_trim_history_indexes'),
        ('sharing', '0004_deduction_references_checked_per_statement'),
    ]

    operations = [
        _0004.foreign_keys_replaced(["charge"], CHECKS, DROP_CHECKS),
    ]
