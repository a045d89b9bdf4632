"""offers: decides which in-stock, relevant offer (if any) a dwelling shopper sees."""
