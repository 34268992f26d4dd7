"""Warehouses and file stores that transfers load into, behind one contract (``base.py``)."""
