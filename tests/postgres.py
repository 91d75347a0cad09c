"""A second PostgreSQL connection to the test database, outside Django and its pool (to end its sessions)."""

import psycopg
from django.db import connection


def raw_connection() -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
                           host=s["HOST"] or None, port=s["PORT"] or None, autocommit=True)
