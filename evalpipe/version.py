"""evalpipe's version: a leaf, so the store and the report can name it without importing the
package's front door (pyproject.toml reads it from here too)."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
