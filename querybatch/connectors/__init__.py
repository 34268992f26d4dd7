"""Data sources behind one interface, found through ``querybatch.connectors`` entry points."""
