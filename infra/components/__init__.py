"""One module per Pulumi component."""
