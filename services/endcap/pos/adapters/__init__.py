"""Adapters to POS/ERP systems, one per kind of source, selected by ``[pos] adapter``."""
