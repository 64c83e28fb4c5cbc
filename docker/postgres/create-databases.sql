-- Runs once, when the compose PostgreSQL volume is first initialized (docker-entrypoint-initdb.d),
-- as POSTGRES_USER, which the entrypoint has already given the database POSTGRES_DB (dagster).
-- The Dagster instance, the MLflow tracking store and the application each get their own database.
CREATE DATABASE mlflow;
CREATE DATABASE coinpilot;
