"""pacs-kit: the command line of cloud-pacs-kit."""
