"""History references without index or database constraint, and no single-column index on an account's
enterprise or folder: each index and each constraint check costs every transfer (bench/RESULTS.md, section 2)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0005_transfer_function'),
    ]

    operations = [
        # Django's AlterField(db_index=False) on the enterprise key would also drop the partial unique index
        # account_one_management_account_per_enterprise on PostgreSQL (it matches indexes by column), so only the
        # two single-column indexes are dropped here, by name (the same on SQLite and PostgreSQL).
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "accounts_account_enterprise_id_5571a11a"',
                    'CREATE INDEX "accounts_account_enterprise_id_5571a11a" ON "accounts_account" ("enterprise_id")'),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "accounts_account_folder_id_7f7e6688"',
                    'CREATE INDEX "accounts_account_folder_id_7f7e6688" ON "accounts_account" ("folder_id")'),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='account',
                    name='enterprise',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='accounts', to='accounts.enterprise'),
                ),
                migrations.AlterField(
                    model_name='account',
                    name='folder',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='accounts', to='accounts.folder'),
                ),
            ],
        ),
        migrations.AlterField(
            model_name='creditchangerecord',
            name='actor',
            field=models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='operation',
            name='actor',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='transferrecord',
            name='actor',
            field=models.ForeignKey(db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
