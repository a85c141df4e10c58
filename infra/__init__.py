"""The cloud-pacs Pulumi program and its components."""
