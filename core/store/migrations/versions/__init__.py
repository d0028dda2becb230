"""One file per revision: r0001 is the schema every database had before migrations (commit e22652e)."""
