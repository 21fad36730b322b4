"""Great Expectations suites as code, one module per data contract (labels, balance, splits, submission)."""
