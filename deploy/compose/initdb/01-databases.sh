#!/bin/sh
# First start of the postgres container: the read store and a stand-in legacy database with the
# outbox table strangler ships (migrations/outbox/postgres.sql). Point LEGACY_DATABASE_URL at your
# real legacy database instead, and apply that DDL there with your own migration tool.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE DATABASE strangler_read;
CREATE DATABASE legacy;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname legacy -f /strangler/outbox-postgres.sql
