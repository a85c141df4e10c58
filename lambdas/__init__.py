"""AWS Lambda handlers and their pure cores (no Pulumi here; pydicom stays out of infra/)."""
