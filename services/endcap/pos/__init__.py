"""The store's data path: POS sales and ERP stock/catalogue into the edge, exactly once."""
