"""The ``dicomregsave`` command: parser and commands, batch runs, JSON reports, sending to a PACS."""
