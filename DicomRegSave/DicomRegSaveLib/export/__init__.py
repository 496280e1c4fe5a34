"""The export: its options (one table, :mod:`.option_table`; :class:`~.options.ExportOptions` and typed
values, :mod:`.options`), the pipeline deformation -> REG file (:mod:`.pipeline`), and one export as
a front end asks for it, files in and a REG file out (:mod:`.request`)."""

__all__ = ["option_table", "options", "pipeline", "request"]
