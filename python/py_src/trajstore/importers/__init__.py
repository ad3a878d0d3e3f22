"""Importers of episodes recorded by other tools (schema/import.md): DIAMBRA Arena's
`.diambra` files (`trajstore.importers.diambra`) and Minari datasets
(`trajstore.importers.minari`). Each source library is imported only by its own importer."""

from ._common import ImportReport, SourceError

__all__ = ["ImportReport", "SourceError"]
