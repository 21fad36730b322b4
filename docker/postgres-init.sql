-- The second database of the profile: MLflow's tracking and registry store (Dagster's is POSTGRES_DB).
CREATE DATABASE mlflow OWNER maskops;
