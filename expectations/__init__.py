"""Great Expectations 1.x suites as code, one module per data contract.

labels, balance, splits, label_files, submission; each returns Validations (a DataFrame and
its expectations) that contract.run_contract validates. Pure GX + pandas: no Dagster here.
"""
